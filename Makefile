# llm-gateway: `make run` runs the whole gateway locally, `make test` runs the tests.
# Both install what they need first (apt packages, librdkafka >= 2.1, the Tansu broker).
.PHONY: bootstrap build build-tests run test validate-infra bench clean

bootstrap:
	@bash scripts/bootstrap.sh

build: bootstrap
	@bash scripts/build.sh

build-tests: bootstrap
	@bash scripts/build.sh --tests

run: build
	@bash scripts/run-local.sh

test: build-tests
	@bash scripts/test.sh

validate-infra:
	@bash scripts/validate-infra.sh

bench: bootstrap
	@bash benchmarks/run.sh

clean:
	rm -rf .build .run
