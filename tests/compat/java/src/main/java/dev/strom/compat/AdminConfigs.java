package dev.strom.compat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;

/**
 * {@code configs BOOTSTRAP TOPIC}: the Java Admin's config and record-deletion calls. createTopics with
 * configs (and the configs the CreateTopics response returns), describeConfigs with sources and synonyms
 * for a topic and the broker, incrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT, validateOnly, bad
 * values, unknown names, a cluster-wide broker default), deleteRecords and the errors on the way.
 */
final class AdminConfigs {
    private static final int TIMEOUT_S = 30;
    /** The configs reported for the topic; each with value and source. */
    private static final List<String> KEYS = List.of("cleanup.policy", "retention.ms", "compression.type",
            "max.message.bytes", "message.timestamp.after.max.ms", "message.timestamp.before.max.ms",
            "segment.bytes", "min.insync.replicas", "delete.retention.ms");

    private AdminConfigs() {}

    static Map<String, Object> run(String bootstrap, String topic) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60000);
        try (Admin admin = Admin.create(p)) {
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);

            // createTopics with configs; the response carries the resulting configs (CreateTopics v5+)
            out.put("create_validate_only_bad", Compat.errorOf(() -> admin.createTopics(
                    List.of(new NewTopic(topic, 2, (short) 1).configs(Map.of("retention.ms", "soon"))),
                    new CreateTopicsOptions().validateOnly(true)).all().get(TIMEOUT_S, TimeUnit.SECONDS)));
            out.put("create_unknown_config", Compat.errorOf(() -> admin.createTopics(
                    List.of(new NewTopic(topic, 2, (short) 1).configs(Map.of("no.such.config", "1"))))
                    .all().get(TIMEOUT_S, TimeUnit.SECONDS)));
            CreateTopicsResult created = admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1)
                    .configs(Map.of("cleanup.policy", "compact", "retention.ms", "3600000", "compression.type", "lz4"))));
            created.all().get(TIMEOUT_S, TimeUnit.SECONDS);
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("partitions", created.numPartitions(topic).get(TIMEOUT_S, TimeUnit.SECONDS));
            c.put("replication_factor", (int) created.replicationFactor(topic).get(TIMEOUT_S, TimeUnit.SECONDS));
            c.put("configs", entries(created.config(topic).get(TIMEOUT_S, TimeUnit.SECONDS)));
            out.put("create", c);

            // describeConfigs: values, sources, synonyms
            out.put("describe", describe(admin, res));
            Config withSynonyms = admin.describeConfigs(List.of(res), new DescribeConfigsOptions().includeSynonyms(true))
                    .all().get(TIMEOUT_S, TimeUnit.SECONDS).get(res);
            out.put("synonyms_retention_ms", synonyms(withSynonyms.get("retention.ms")));
            out.put("synonyms_segment_bytes", synonyms(withSynonyms.get("segment.bytes")));
            out.put("describe_missing_topic", Compat.errorOf(() -> admin.describeConfigs(
                    List.of(new ConfigResource(ConfigResource.Type.TOPIC, topic + "-missing")))
                    .all().get(TIMEOUT_S, TimeUnit.SECONDS)));

            // incrementalAlterConfigs
            alter(admin, res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("compression.type", ""), AlterConfigOp.OpType.DELETE),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.APPEND),
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", "65536"), AlterConfigOp.OpType.SET)), false);
            out.put("after_alter", describe(admin, res));
            alter(admin, res, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT)), false);
            out.put("after_subtract", describe(admin, res).get("cleanup.policy"));
            alter(admin, res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "1000"), AlterConfigOp.OpType.SET)), true);
            out.put("after_validate_only", describe(admin, res).get("retention.ms"));
            out.put("alter_bad_value", Compat.errorOf(() -> alter(admin, res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)), false)));
            out.put("alter_unknown_name", Compat.errorOf(() -> alter(admin, res, List.of(
                    new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET)), false)));
            out.put("alter_removed_difference", Compat.errorOf(() -> alter(admin, res, List.of(
                    new AlterConfigOp(new ConfigEntry("message.timestamp.difference.max.ms", "1000"), AlterConfigOp.OpType.SET)), false)));
            out.put("alter_missing_topic", Compat.errorOf(() -> alter(admin,
                    new ConfigResource(ConfigResource.Type.TOPIC, topic + "-missing"), List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "1000"), AlterConfigOp.OpType.SET)), false)));

            // A cluster-wide broker default (resource "") shows on a topic without an override.
            ConfigResource cluster = new ConfigResource(ConfigResource.Type.BROKER, "");
            alter(admin, cluster, List.of(new AlterConfigOp(new ConfigEntry("log.cleaner.delete.retention.ms", "123456"),
                    AlterConfigOp.OpType.SET)), false);
            // Kafka applies a new broker default to its topics asynchronously: wait for it to show.
            Object shown = null;
            long until = System.currentTimeMillis() + TIMEOUT_S * 1000L;
            while (System.currentTimeMillis() < until) {
                shown = describe(admin, res).get("delete.retention.ms");
                if (shown != null && "123456".equals(((Map<?, ?>) shown).get("value"))) break;
                Thread.sleep(200);
            }
            out.put("delete_retention_from_broker_default", shown);
            alter(admin, cluster, List.of(new AlterConfigOp(new ConfigEntry("log.cleaner.delete.retention.ms", ""),
                    AlterConfigOp.OpType.DELETE)), false);
            until = System.currentTimeMillis() + TIMEOUT_S * 1000L;
            while (System.currentTimeMillis() < until) {
                shown = describe(admin, res).get("delete.retention.ms");
                if (shown != null && "86400000".equals(((Map<?, ?>) shown).get("value"))) break;
                Thread.sleep(200);
            }
            out.put("delete_retention_after_reset", shown);

            // deleteRecords on partition 0: ten records, delete before 4
            try (KafkaProducer<byte[], byte[]> producer = Compat.producer(bootstrap, "none")) {
                for (int i = 0; i < 10; i++) {
                    producer.send(new ProducerRecord<>(topic, 0, ("k" + i).getBytes(StandardCharsets.UTF_8),
                            ("v" + i).getBytes(StandardCharsets.UTF_8))).get(TIMEOUT_S, TimeUnit.SECONDS);
                }
            }
            TopicPartition tp0 = new TopicPartition(topic, 0);
            long low = admin.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp0)
                    .get(TIMEOUT_S, TimeUnit.SECONDS).lowWatermark();
            out.put("delete_records_low_watermark", low);
            out.put("earliest_after_delete", Compat.listOffset(admin, tp0, OffsetSpec.earliest()).get("offset"));
            out.put("latest_after_delete", Compat.listOffset(admin, tp0, OffsetSpec.latest()).get("offset"));
            out.put("delete_records_past_end", Compat.errorOf(() -> admin.deleteRecords(
                    Map.of(tp0, RecordsToDelete.beforeOffset(99))).all().get(TIMEOUT_S, TimeUnit.SECONDS)));
            long all = admin.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(-1))).lowWatermarks().get(tp0)
                    .get(TIMEOUT_S, TimeUnit.SECONDS).lowWatermark();
            out.put("delete_records_to_end", all);

            // the broker's own configs
            ConfigResource node = new ConfigResource(ConfigResource.Type.BROKER,
                    Integer.toString(admin.describeCluster().controller().get(TIMEOUT_S, TimeUnit.SECONDS).id()));
            Config bc = admin.describeConfigs(List.of(node)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(node);
            Map<String, Object> b = new LinkedHashMap<>();
            for (String k : List.of("log.retention.check.interval.ms", "log.cleaner.threads", "log.cleaner.backoff.ms",
                    "log.cleaner.dedupe.buffer.size", "log.message.timestamp.after.max.ms", "compression.type")) {
                b.put(k, entry(bc.get(k)));
            }
            out.put("broker", b);
        }
        return out;
    }

    static void alter(Admin admin, ConfigResource res, Collection<AlterConfigOp> ops, boolean validateOnly) throws Exception {
        admin.incrementalAlterConfigs(Map.of(res, ops), new AlterConfigsOptions().validateOnly(validateOnly))
                .all().get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    static Map<String, Object> describe(Admin admin, ConfigResource res) throws Exception {
        Config cfg = admin.describeConfigs(List.of(res)).all().get(TIMEOUT_S, TimeUnit.SECONDS).get(res);
        Map<String, Object> m = new LinkedHashMap<>();
        for (String k : KEYS) m.put(k, entry(cfg.get(k)));
        return m;
    }

    static Map<String, Object> entries(Config cfg) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (String k : KEYS) m.put(k, entry(cfg.get(k)));
        return m;
    }

    static Object entry(ConfigEntry e) {
        if (e == null) return null;
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("value", e.value());
        m.put("source", e.source().name());
        m.put("read_only", e.isReadOnly());
        m.put("sensitive", e.isSensitive());
        return m;
    }

    static List<Object> synonyms(ConfigEntry e) {
        List<Object> l = new ArrayList<>();
        if (e == null) return l;
        for (ConfigEntry.ConfigSynonym s : e.synonyms()) {
            List<Object> one = new ArrayList<>();
            one.add(s.name());
            one.add(s.value());
            one.add(s.source().name());
            l.add(one);
        }
        return l;
    }
}
