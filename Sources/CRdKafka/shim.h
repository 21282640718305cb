#ifndef LLMGW_CRDKAFKA_SHIM_H
#define LLMGW_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>

/// rd_kafka_producev is a variadic macro API that Swift cannot call; this wraps the one form we use.
/// On success librdkafka owns `headers`; on failure the caller still does.
static inline rd_kafka_resp_err_t llmgw_produce(rd_kafka_t *rk, const char *topic,
                                                const void *key, size_t key_len,
                                                const void *value, size_t value_len,
                                                rd_kafka_headers_t *headers, void *opaque) {
    if (headers == NULL) {
        return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                                 RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    }
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

#endif
