// Swift cannot call C-variadic functions or see function-like macros: the few librdkafka
// entry points exocheck needs in that shape are wrapped here as static inline functions,
// compiled by the Clang importer (no C target needed).
#ifndef EXOCHECK_CRDKAFKA_SHIM_H
#define EXOCHECK_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/// rd_kafka_producev with a copied key/value, optional headers (ownership passes to librdkafka
/// on success only) and a per-message opaque handed back in the delivery report.
static inline rd_kafka_resp_err_t exo_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                              const void *key, size_t key_len,
                                              const void *value, size_t value_len,
                                              rd_kafka_headers_t *headers, void *opaque) {
    /* RD_KAFKA_V_HEADERS(NULL) means "no headers". */
    return rd_kafka_producev(rk,
                             RD_KAFKA_V_TOPIC(topic),
                             RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_HEADERS(headers),
                             RD_KAFKA_V_OPAQUE(opaque),
                             RD_KAFKA_V_END);
}

static inline int32_t exo_partition_ua(void) { return RD_KAFKA_PARTITION_UA; }
static inline int64_t exo_offset_beginning(void) { return RD_KAFKA_OFFSET_BEGINNING; }
static inline int64_t exo_offset_end(void) { return RD_KAFKA_OFFSET_END; }
static inline int64_t exo_offset_stored(void) { return RD_KAFKA_OFFSET_STORED; }
static inline int64_t exo_offset_invalid(void) { return RD_KAFKA_OFFSET_INVALID; }

#endif
