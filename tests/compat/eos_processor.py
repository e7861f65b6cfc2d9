"""A consume-transform-produce loop with exactly-once semantics, run as a separate process by
test_transactions.py so the test can SIGKILL it mid-stream.

usage: eos_processor.py BOOTSTRAP INPUT OUTPUT GROUP TRANSACTIONAL_ID
"""

import sys

from confluent_kafka import Consumer, KafkaException, Producer

bootstrap, input_topic, output_topic, group, txn_id = sys.argv[1:6]
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
})
producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5})
producer.init_transactions(30)
consumer.subscribe([input_topic])
while True:
    msgs = consumer.consume(num_messages=50, timeout=0.5)
    msgs = [m for m in msgs if not m.error()]
    if not msgs:
        continue
    producer.begin_transaction()
    for m in msgs:
        producer.produce(output_topic, key=m.key(), value=m.value().upper(), partition=m.partition())
    positions = consumer.position(consumer.assignment())
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
    try:
        producer.commit_transaction(30)
    except KafkaException:
        producer.abort_transaction(30)
        raise
    print(f"committed {len(msgs)}", flush=True)
