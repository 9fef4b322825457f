#!/usr/bin/env python3
"""An independent Kafka client (confluent-kafka, its own librdkafka) for interop tests.

    interop.py produce BOOTSTRAP TOPIC COUNT         keys k<i%5>, header exocheck-id=py-<i>
    interop.py consume BOOTSTRAP TOPIC GROUP COUNT   prints one JSON line per message
    interop.py member  BOOTSTRAP TOPIC GROUP STRATEGY  joins the group, prints assignments, runs until killed
"""
import json
import sys

from confluent_kafka import Consumer, Producer


def common(bootstrap):
    return {"bootstrap.servers": bootstrap, "log_level": 3}


def produce(bootstrap, topic, count):
    p = Producer({**common(bootstrap), "enable.idempotence": True})
    failures = []
    for i in range(int(count)):
        p.produce(topic, key=f"k{i % 5}", value=f"py-{i}", headers=[("exocheck-id", f"py-{i}".encode())],
                  on_delivery=lambda err, msg: failures.append(err) if err else None)
    p.flush(30)
    print(json.dumps({"produced": int(count), "failures": len(failures)}), flush=True)
    return 1 if failures else 0


def consumer(bootstrap, group, strategy="range"):
    return Consumer({**common(bootstrap), "group.id": group, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                     "partition.assignment.strategy": strategy})


def consume(bootstrap, topic, group, count):
    c = consumer(bootstrap, group)
    c.subscribe([topic])
    seen = 0
    while seen < int(count):
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        headers = {k: v.decode() for k, v in (m.headers() or [])}
        print(json.dumps({"key": m.key().decode() if m.key() else None, "value": m.value().decode(),
                          "headers": headers, "partition": m.partition(), "offset": m.offset()}), flush=True)
        seen += 1
    c.close()
    return 0


def member(bootstrap, topic, group, strategy):
    c = consumer(bootstrap, group, strategy)

    def on_assign(consumer, partitions):
        print(json.dumps({"assigned": sorted(p.partition for p in partitions)}), flush=True)

    c.subscribe([topic], on_assign=on_assign)
    while True:
        c.poll(0.2)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"produce": produce, "consume": consume, "member": member}[cmd](*args))
