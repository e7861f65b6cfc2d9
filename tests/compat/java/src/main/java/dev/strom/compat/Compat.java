package dev.strom.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client side of the compat suite. One mode per invocation; prints one JSON object on stdout.
 *
 * <pre>
 *   admin    BOOTSTRAP TOPIC                       createTopics, describeTopics, describeCluster,
 *                                                  listOffsets (earliest/latest/forTimestamp/maxTimestamp),
 *                                                  deleteTopics, and the errors on the way
 *   produce  BOOTSTRAP TOPIC COMPRESSION COUNT PARTITIONS   keyed records with headers, acks=all
 *   consume  BOOTSTRAP TOPIC PARTITION OFFSET COUNT         assign + seek, read COUNT records
 *   configs  BOOTSTRAP TOPIC                       topic/broker configs and deleteRecords (AdminConfigs)
 *   txn      BOOTSTRAP TOPIC GROUP TXN_ID          transactional producer, read_committed (Transactions)
 *   expire   BOOTSTRAP TOPIC TXN_ID WAIT_MS        transactional/producer id expiration (Expiry)
 * </pre>
 *
 * Errors from the broker are reported as their Kafka error code (Errors.forException) and class name.
 */
public final class Compat {
    private static final int TIMEOUT_S = 30;

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: Compat admin|produce|consume BOOTSTRAP ...");
            System.exit(2);
        }
        Map<String, Object> out;
        switch (args[0]) {
            case "admin": out = admin(args[1], args[2]); break;
            case "produce": out = produce(args[1], args[2], args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5])); break;
            case "consume": out = consume(args[1], args[2], Integer.parseInt(args[3]), Long.parseLong(args[4]), Integer.parseInt(args[5])); break;
            case "configs": out = AdminConfigs.run(args[1], args[2]); break;
            case "txn": out = Transactions.run(args[1], args[2], args[3], args[4]); break;
            case "expire": out = Expiry.run(args[1], args[2], args[3], Long.parseLong(args[4])); break;
            case "txn-protocol": out = TxnProtocol.run(args[1], args[2], args[3], args[4]); break;
            default:
                System.err.println("unknown mode " + args[0]);
                System.exit(2);
                return;
        }
        System.out.println(Json.write(out));
        System.out.flush();
        // Client threads are closed, but do not let a stray non-daemon thread hold the JVM.
        System.exit(0);
    }

    // ------------------------------------------------------------------ admin

    static Map<String, Object> admin(String bootstrap, String topic) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60000);
        try (Admin admin = Admin.create(p)) {
            NewTopic nt = new NewTopic(topic, 3, (short) 1)
                    .configs(Map.of("retention.ms", "86400000", "cleanup.policy", "delete"));
            admin.createTopics(List.of(nt)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            out.put("create", "ok");
            out.put("create_again", errorOf(() -> admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(TIMEOUT_S, TimeUnit.SECONDS)));
            out.put("create_invalid_name", errorOf(() -> admin.createTopics(List.of(new NewTopic("bad name!", 1, (short) 1))).all().get(TIMEOUT_S, TimeUnit.SECONDS)));

            // describeTopics (retry until the new topic's metadata has propagated)
            TopicDescription td = null;
            long deadline = System.currentTimeMillis() + TIMEOUT_S * 1000L;
            while (td == null) {
                try {
                    td = admin.describeTopics(List.of(topic)).allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS).get(topic);
                    if (td.partitions().size() != 3 || td.partitions().stream().anyMatch(tp -> tp.leader() == null)) td = null;
                } catch (ExecutionException e) {
                    if (System.currentTimeMillis() > deadline) throw e;
                }
                if (td == null) Thread.sleep(100);
            }
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("name", td.name());
            d.put("internal", td.isInternal());
            d.put("topic_id", td.topicId() == null ? null : td.topicId().toString());
            List<Object> parts = new ArrayList<>();
            for (TopicPartitionInfo tpi : td.partitions()) {
                Map<String, Object> pm = new LinkedHashMap<>();
                pm.put("partition", tpi.partition());
                pm.put("leader", tpi.leader() == null ? null : tpi.leader().id());
                pm.put("replicas", ids(tpi.replicas()));
                pm.put("isr", ids(tpi.isr()));
                parts.add(pm);
            }
            d.put("partitions", parts);
            out.put("describe", d);
            out.put("describe_missing", errorOf(() -> admin.describeTopics(List.of(topic + "-missing")).allTopicNames().get(TIMEOUT_S, TimeUnit.SECONDS)));

            // describeCluster
            DescribeClusterResult dc = admin.describeCluster();
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("cluster_id", dc.clusterId().get(TIMEOUT_S, TimeUnit.SECONDS));
            Node ctl = dc.controller().get(TIMEOUT_S, TimeUnit.SECONDS);
            c.put("controller", ctl == null ? null : ctl.id());
            List<Object> nodes = new ArrayList<>();
            for (Node n : dc.nodes().get(TIMEOUT_S, TimeUnit.SECONDS)) {
                Map<String, Object> nm = new LinkedHashMap<>();
                nm.put("id", n.id());
                nm.put("host", n.host());
                nm.put("port", n.port());
                nodes.add(nm);
            }
            c.put("nodes", nodes);
            out.put("cluster", c);

            // listOffsets: records with out-of-order timestamps in partition 0, partition 1 empty
            long base = System.currentTimeMillis() - 3_600_000L;
            long[] deltas = {1000, 5000, 3000, 7000, 2000};
            try (KafkaProducer<byte[], byte[]> producer = producer(bootstrap, "none")) {
                for (long dlt : deltas) {
                    producer.send(new ProducerRecord<>(topic, 0, base + dlt, null, Long.toString(dlt).getBytes(StandardCharsets.UTF_8)))
                            .get(TIMEOUT_S, TimeUnit.SECONDS);
                }
            }
            out.put("base_ts", base);
            TopicPartition tp0 = new TopicPartition(topic, 0);
            TopicPartition tp1 = new TopicPartition(topic, 1);
            Map<String, Object> offs = new LinkedHashMap<>();
            offs.put("earliest", listOffset(admin, tp0, OffsetSpec.earliest()));
            offs.put("latest", listOffset(admin, tp0, OffsetSpec.latest()));
            offs.put("for_ts_2500", listOffset(admin, tp0, OffsetSpec.forTimestamp(base + 2500)));
            offs.put("for_ts_6000", listOffset(admin, tp0, OffsetSpec.forTimestamp(base + 6000)));
            offs.put("for_ts_future", listOffset(admin, tp0, OffsetSpec.forTimestamp(base + 99_000)));
            offs.put("max_ts", listOffset(admin, tp0, OffsetSpec.maxTimestamp()));
            offs.put("empty_earliest", listOffset(admin, tp1, OffsetSpec.earliest()));
            offs.put("empty_latest", listOffset(admin, tp1, OffsetSpec.latest()));
            offs.put("empty_max_ts", listOffset(admin, tp1, OffsetSpec.maxTimestamp()));
            out.put("offsets", offs);

            // deleteTopics, then it is gone
            admin.deleteTopics(List.of(topic)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            out.put("delete", "ok");
            deadline = System.currentTimeMillis() + TIMEOUT_S * 1000L;
            boolean gone = false;
            while (!gone && System.currentTimeMillis() < deadline) {
                gone = !admin.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS).contains(topic);
                if (!gone) Thread.sleep(100);
            }
            out.put("gone_after_delete", gone);
            out.put("delete_again", errorOf(() -> admin.deleteTopics(List.of(topic)).all().get(TIMEOUT_S, TimeUnit.SECONDS)));
        }
        return out;
    }

    static Map<String, Object> listOffset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        ListOffsetsResult.ListOffsetsResultInfo info =
                admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get(TIMEOUT_S, TimeUnit.SECONDS);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("offset", info.offset());
        m.put("timestamp", info.timestamp());
        return m;
    }

    static List<Object> ids(Collection<Node> nodes) {
        List<Object> l = new ArrayList<>();
        for (Node n : nodes) l.add(n.id());
        return l;
    }

    interface Call { void run() throws Exception; }

    /** Runs a call expected to fail; returns {code, error} (code = Kafka error code) or {code: 0} if it worked. */
    static Map<String, Object> errorOf(Call call) {
        Map<String, Object> m = new LinkedHashMap<>();
        try {
            call.run();
            m.put("code", 0);
            m.put("error", null);
        } catch (Exception e) {
            Throwable t = (e instanceof ExecutionException && e.getCause() != null) ? e.getCause() : e;
            m.put("code", (int) Errors.forException(t).code());
            m.put("error", t.getClass().getSimpleName());
        }
        return m;
    }

    // ------------------------------------------------------------------ produce / consume

    static KafkaProducer<byte[], byte[]> producer(String bootstrap, String compression) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false); // idempotence is a later issue for strom
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 10);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30000);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    static byte[] utf8(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    /** Record i: key "k-i" (null when i%7==3), value "COMPRESSION-i ..." (null when i%11==5), headers with a
     *  duplicate key and a null value, timestamp base+i, partition i%partitions. */
    static Map<String, Object> produce(String bootstrap, String topic, String compression, int count, int partitions) throws Exception {
        long base = System.currentTimeMillis() - 60_000L;
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = producer(bootstrap, compression)) {
            for (int i = 0; i < count; i++) {
                RecordHeaders h = new RecordHeaders();
                h.add(new RecordHeader("i", utf8(Integer.toString(i))));
                h.add(new RecordHeader("dup", utf8("a")));
                h.add(new RecordHeader("dup", utf8("b")));
                h.add(new RecordHeader("nil", null));
                String key = i % 7 == 3 ? null : "k-" + i;
                String value = i % 11 == 5 ? null : compression + "-" + i + " " + "x".repeat(i % 50);
                futures.add(producer.send(new ProducerRecord<>(topic, i % partitions, base + i, utf8(key), utf8(value), h)));
            }
            producer.flush();
            List<Object> acks = new ArrayList<>();
            for (Future<RecordMetadata> f : futures) {
                RecordMetadata md = f.get(TIMEOUT_S, TimeUnit.SECONDS);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("partition", md.partition());
                m.put("offset", md.offset());
                m.put("timestamp", md.timestamp());
                acks.add(m);
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("base_ts", base);
            out.put("acks", acks);
            return out;
        }
    }

    static Map<String, Object> consume(String bootstrap, String topic, int partition, long offset, int count) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false); // no group.id: assign-only, no group protocol
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        List<Object> recs = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            TopicPartition tp = new TopicPartition(topic, partition);
            consumer.assign(Collections.singletonList(tp));
            consumer.seek(tp, offset);
            long deadline = System.currentTimeMillis() + TIMEOUT_S * 1000L;
            while (recs.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("partition", r.partition());
                    m.put("offset", r.offset());
                    m.put("timestamp", r.timestamp());
                    m.put("timestamp_type", r.timestampType().name);
                    m.put("key", r.key() == null ? null : new String(r.key(), StandardCharsets.UTF_8));
                    m.put("value", r.value() == null ? null : new String(r.value(), StandardCharsets.UTF_8));
                    List<Object> hs = new ArrayList<>();
                    for (Header h : r.headers()) {
                        List<Object> kv = new ArrayList<>();
                        kv.add(h.key());
                        kv.add(h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8));
                        hs.add(kv);
                    }
                    m.put("headers", hs);
                    recs.add(m);
                }
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("records", recs);
        return out;
    }

    // ------------------------------------------------------------------ a tiny JSON writer

    static final class Json {
        static String write(Object o) {
            StringBuilder sb = new StringBuilder();
            write(sb, o);
            return sb.toString();
        }

        @SuppressWarnings("unchecked")
        static void write(StringBuilder sb, Object o) {
            if (o == null) {
                sb.append("null");
            } else if (o instanceof String) {
                str(sb, (String) o);
            } else if (o instanceof Number || o instanceof Boolean) {
                sb.append(o);
            } else if (o instanceof Map) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<String, Object> e : ((Map<String, Object>) o).entrySet()) {
                    if (!first) sb.append(',');
                    first = false;
                    str(sb, e.getKey());
                    sb.append(':');
                    write(sb, e.getValue());
                }
                sb.append('}');
            } else if (o instanceof Collection) {
                sb.append('[');
                boolean first = true;
                for (Object e : (Collection<Object>) o) {
                    if (!first) sb.append(',');
                    first = false;
                    write(sb, e);
                }
                sb.append(']');
            } else {
                str(sb, o.toString());
            }
        }

        static void str(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                        else sb.append(c);
                }
            }
            sb.append('"');
        }
    }
}
