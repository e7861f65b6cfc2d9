package dev.strom.compat;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeProducersResult;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * {@code expire BOOTSTRAP TOPIC TXN_ID WAIT_MS}: transactional.id.expiration.ms and producer.id.expiration.ms
 * as the Java Admin sees them. A committed transaction on partition 0 and an idempotent producer on
 * partition 1; describeTransactions and describeProducers before and after WAIT_MS; the idempotent
 * producer writing again after its state expired; the transactional id initialised again.
 */
final class Expiry {
    private static final int TIMEOUT_S = 30;

    private Expiry() {}

    static Map<String, Object> run(String bootstrap, String topic, String txnId, long waitMs) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        TopicPartition tp0 = new TopicPartition(topic, 0);
        TopicPartition tp1 = new TopicPartition(topic, 1);
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        Properties ip = new Properties();
        ip.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ip.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        ip.put(ProducerConfig.ACKS_CONFIG, "all");
        ip.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        ip.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (Admin admin = Admin.create(ap);
             KafkaProducer<byte[], byte[]> idem = new KafkaProducer<>(ip)) {
            try (KafkaProducer<byte[], byte[]> txn = Transactions.producer(bootstrap, txnId)) {
                txn.initTransactions();
                txn.beginTransaction();
                Transactions.send(txn, topic, "txn", 1);
                txn.commitTransaction();
            }
            for (int i = 0; i < 3; i++) {
                idem.send(new ProducerRecord<>(topic, 1, null, ("idem-" + i).getBytes(StandardCharsets.UTF_8)))
                        .get(TIMEOUT_S, TimeUnit.SECONDS);
            }
            TransactionDescription before = admin.describeTransactions(List.of(txnId)).description(txnId)
                    .get(TIMEOUT_S, TimeUnit.SECONDS);
            out.put("txn_state_before", before.state().toString());
            out.put("producers_before", producers(admin, tp0, tp1));

            Thread.sleep(waitMs);

            out.put("txn_after", Compat.errorOf(() -> admin.describeTransactions(List.of(txnId)).description(txnId)
                    .get(TIMEOUT_S, TimeUnit.SECONDS)));
            out.put("producers_after", producers(admin, tp0, tp1));
            // The expired idempotent producer carries on with its next sequence.
            out.put("idempotent_send_after", Compat.errorOf(() -> {
                for (int i = 3; i < 6; i++) {
                    idem.send(new ProducerRecord<>(topic, 1, null, ("idem-" + i).getBytes(StandardCharsets.UTF_8)))
                            .get(TIMEOUT_S, TimeUnit.SECONDS);
                }
            }));
            out.put("latest_1", Compat.listOffset(admin, tp1, org.apache.kafka.clients.admin.OffsetSpec.latest()).get("offset"));
            try (KafkaProducer<byte[], byte[]> again = Transactions.producer(bootstrap, txnId)) {
                again.initTransactions();
                TransactionDescription after = admin.describeTransactions(List.of(txnId)).description(txnId)
                        .get(TIMEOUT_S, TimeUnit.SECONDS);
                out.put("new_producer_id", after.producerId() != before.producerId());
                out.put("new_epoch", after.producerEpoch());
            }
        }
        return out;
    }

    static Map<String, Object> producers(Admin admin, TopicPartition... tps) throws Exception {
        DescribeProducersResult r = admin.describeProducers(List.of(tps));
        Map<String, Object> m = new LinkedHashMap<>();
        for (TopicPartition tp : tps) {
            m.put(tp.toString(), r.partitionResult(tp).get(TIMEOUT_S, TimeUnit.SECONDS).activeProducers().size());
        }
        return m;
    }
}
