package dev.strom.compat;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;

/**
 * {@code txn-protocol BOOTSTRAP TOPIC GROUP TXN_ID}: which transaction protocol the Java producer ends up
 * using, as a user sees it: the finalized {@code transaction.version} feature (describeFeatures) and the
 * producer epoch describeTransactions reports after each of a commit, an abort and a commit with
 * sendOffsetsToTransaction (protocol v2 bumps it at every end; v1 keeps it). Then what was read
 * committed and the group's committed offset.
 */
final class TxnProtocol {
    private static final int TIMEOUT_S = 30;

    private TxnProtocol() {}

    static Map<String, Object> run(String bootstrap, String topic, String group, String txnId) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap);
             KafkaProducer<byte[], byte[]> producer = Transactions.producer(bootstrap, txnId)) {
            FeatureMetadata features = admin.describeFeatures().featureMetadata().get(TIMEOUT_S, TimeUnit.SECONDS);
            FinalizedVersionRange tv = features.finalizedFeatures().get("transaction.version");
            out.put("transaction_version", tv == null ? null : (int) tv.maxVersionLevel());

            producer.initTransactions();
            List<Object> epochs = new ArrayList<>();
            epochs.add(epoch(admin, txnId));
            producer.beginTransaction();
            Transactions.send(producer, topic, "c1", 3);
            producer.commitTransaction();
            epochs.add(epoch(admin, txnId));

            producer.beginTransaction();
            Transactions.send(producer, topic, "a", 2);
            producer.abortTransaction();
            epochs.add(epoch(admin, txnId));

            producer.beginTransaction();
            Transactions.send(producer, topic, "c2", 2);
            producer.sendOffsetsToTransaction(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(7L, "v")),
                    new ConsumerGroupMetadata(group));
            producer.commitTransaction();
            epochs.add(epoch(admin, txnId));
            out.put("epochs", epochs);

            out.put("state", admin.describeTransactions(List.of(txnId)).description(txnId)
                    .get(TIMEOUT_S, TimeUnit.SECONDS).state().toString());
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(TIMEOUT_S, TimeUnit.SECONDS);
            OffsetAndMetadata o = committed.get(new TopicPartition(topic, 0));
            out.put("group_offset", o == null ? null : o.offset());
        }
        out.put("read_committed", Transactions.read(bootstrap, new TopicPartition(topic, 0), "read_committed"));
        return out;
    }

    private static int epoch(Admin admin, String txnId) throws Exception {
        return admin.describeTransactions(List.of(txnId)).description(txnId).get(TIMEOUT_S, TimeUnit.SECONDS)
                .producerEpoch();
    }
}
