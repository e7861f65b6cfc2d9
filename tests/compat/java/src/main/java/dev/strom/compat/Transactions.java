package dev.strom.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * {@code txn BOOTSTRAP TOPIC GROUP TXN_ID}: the Java transactional producer. A committed transaction, an
 * aborted one, one with sendOffsetsToTransaction; read back with read_committed and read_uncommitted Java
 * consumers; the group's committed offsets; and a second producer with the same transactional.id fencing
 * the first mid-transaction.
 */
final class Transactions {
    private static final int TIMEOUT_S = 30;

    private Transactions() {}

    static KafkaProducer<byte[], byte[]> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30000);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    static void send(KafkaProducer<byte[], byte[]> producer, String topic, String prefix, int n) throws Exception {
        for (int i = 0; i < n; i++) {
            producer.send(new ProducerRecord<>(topic, 0, ("k" + i).getBytes(StandardCharsets.UTF_8),
                    (prefix + "-" + i).getBytes(StandardCharsets.UTF_8)));
        }
        producer.flush();
    }

    static Map<String, Object> run(String bootstrap, String topic, String group, String txnId) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<byte[], byte[]> producer = producer(bootstrap, txnId)) {
            producer.initTransactions();
            producer.beginTransaction();
            send(producer, topic, "committed", 5);
            producer.commitTransaction();

            producer.beginTransaction();
            send(producer, topic, "aborted", 4);
            producer.abortTransaction();

            producer.beginTransaction();
            send(producer, topic, "with-offsets", 3);
            producer.sendOffsetsToTransaction(Map.of(new TopicPartition(topic, 1), new OffsetAndMetadata(42L, "m")),
                    new ConsumerGroupMetadata(group));
            producer.commitTransaction();
        }
        out.put("read_committed", read(bootstrap, tp, "read_committed"));
        out.put("read_uncommitted", read(bootstrap, tp, "read_uncommitted"));

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS);
            Map<String, Object> g = new LinkedHashMap<>();
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : committed.entrySet()) {
                g.put(e.getKey().toString(), List.of(e.getValue().offset(), e.getValue().metadata()));
            }
            out.put("group_offsets", g);
            out.put("latest", Compat.listOffset(admin, tp, OffsetSpec.latest()).get("offset"));
        }

        // Fencing: a second producer with the same transactional.id ends the first one's transaction.
        String fenceId = txnId + "-fence";
        try (KafkaProducer<byte[], byte[]> first = producer(bootstrap, fenceId)) {
            first.initTransactions();
            first.beginTransaction();
            send(first, topic, "zombie", 2);
            try (KafkaProducer<byte[], byte[]> second = producer(bootstrap, fenceId)) {
                second.initTransactions();
                out.put("zombie_commit", Compat.errorOf(first::commitTransaction));
                second.beginTransaction();
                send(second, topic, "successor", 2);
                second.commitTransaction();
                out.put("successor_commit", "ok");
            }
        }
        out.put("read_committed_after_fence", read(bootstrap, tp, "read_committed"));
        return out;
    }

    /** Values of partition tp from offset 0 up to its end under the isolation level. */
    static List<Object> read(String bootstrap, TopicPartition tp, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        List<Object> values = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            consumer.assign(Collections.singletonList(tp));
            consumer.seekToBeginning(List.of(tp));
            long end = consumer.endOffsets(List.of(tp), Duration.ofSeconds(TIMEOUT_S)).get(tp);
            long deadline = System.currentTimeMillis() + TIMEOUT_S * 1000L;
            while (consumer.position(tp) < end && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(300))) {
                    values.add(new String(r.value(), StandardCharsets.UTF_8));
                }
            }
        }
        return values;
    }
}
