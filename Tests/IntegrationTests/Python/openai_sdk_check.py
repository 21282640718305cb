"""Drives a running llm-gateway with the official OpenAI Python SDK, unchanged except for base_url.

Usage: openai_sdk_check.py BASE_URL RUN_ID [API_KEY]

Checks a non-streamed call, a streamed call (with usage), the errors the SDK raises for an unknown model and a bad
request, and an upstream failure inside a stream. Prints one `ok: …` line per check and exits 0 only if all pass.
The gateway must point its providers at the bundled mock, which answers `mock reply: <prompt>`.
"""
import sys

import openai


def main() -> int:
    base_url, run = sys.argv[1], sys.argv[2]
    api_key = sys.argv[3] if len(sys.argv) > 3 else "sk-gateway-test"
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=30)
    failures = []

    def check(name, condition, detail=""):
        if condition:
            print(f"ok: {name}")
        else:
            print(f"FAILED: {name} {detail}")
            failures.append(name)

    # A non-streamed call.
    prompt = f"{run} plain"
    completion = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
    )
    check("non-streamed object", completion.object == "chat.completion", completion.object)
    check("non-streamed text", completion.choices[0].message.content == f"mock reply: {prompt}",
          repr(completion.choices[0].message.content))
    check("non-streamed finish_reason", completion.choices[0].finish_reason == "stop", completion.choices[0].finish_reason)
    check("non-streamed usage", completion.usage is not None and completion.usage.total_tokens > 0, repr(completion.usage))

    # A streamed call through another provider, with a usage chunk.
    prompt = f"{run} streamed"
    stream = client.chat.completions.create(
        model="anthropic/claude-3-5-haiku-latest",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    text = "".join(c.choices[0].delta.content for c in content_chunks)
    check("streamed chunk objects", all(c.object == "chat.completion.chunk" for c in chunks))
    check("streamed role first", bool(chunks) and chunks[0].choices[0].delta.role == "assistant")
    check("streamed text", text == f"mock reply: {prompt}", repr(text))
    check("streamed in several chunks", len(content_chunks) > 1, str(len(content_chunks)))
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check("streamed finish_reason", finish == ["stop"], repr(finish))
    check("streamed usage chunk", chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0,
          repr(chunks[-1].usage))

    # Errors, as the SDK's exception types.
    try:
        client.chat.completions.create(model="nowhere/no-model", messages=[{"role": "user", "content": "x"}])
        check("unknown model raises NotFoundError", False, "no exception")
    except openai.NotFoundError as error:
        check("unknown model raises NotFoundError", error.status_code == 404 and error.code == "model_not_found", repr(error))
    try:
        client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}], temperature=9
        )
        check("bad request raises BadRequestError", False, "no exception")
    except openai.BadRequestError as error:
        check("bad request raises BadRequestError", error.status_code == 400, repr(error))

    # An upstream failure after the stream started arrives as an error event, which the SDK raises.
    try:
        for _ in client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": f"{run} broken [mock:status=400]"}],
            stream=True,
        ):
            pass
        check("failed stream raises APIError", False, "no exception")
    except openai.APIError as error:
        check("failed stream raises APIError", "mock failure 400" in str(error.message), repr(error))

    print("all checks passed" if not failures else f"{len(failures)} checks failed")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
