package dev.strom.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * One member of a consumer group, for the group tests (test_java_groups.py). Subscribes to TOPIC,
 * prints one JSON line per record ({"p": partition, "o": offset}) and per rebalance callback
 * ({"assigned": [...]}, {"revoked": [...]}, {"lost": [...]}), commits synchronously after every
 * non-empty poll (of at most 20 records, then pauses 20 ms) and on revocation, and leaves the
 * group cleanly on SIGTERM.
 *
 * <pre>
 *   GroupWorker BOOTSTRAP TOPIC GROUP CLIENT_ID PROTOCOL ASSIGNOR
 *     PROTOCOL classic:  ASSIGNOR range | cooperative-sticky (partition.assignment.strategy)
 *     PROTOCOL consumer: ASSIGNOR uniform | range | - (group.remote.assignor; - for the broker's default)
 * </pre>
 */
public final class GroupWorker {
    private static synchronized void emit(Map<String, Object> event) {
        System.out.println(Compat.Json.write(event));
        System.out.flush();
    }

    private static Map<String, Object> event(String key, Object value) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(key, value);
        return m;
    }

    private static List<Object> partitions(Collection<TopicPartition> ps) {
        List<Object> out = new ArrayList<>();
        ps.stream().map(TopicPartition::partition).sorted().forEach(out::add);
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: GroupWorker BOOTSTRAP TOPIC GROUP CLIENT_ID PROTOCOL ASSIGNOR");
            System.exit(2);
        }
        String bootstrap = args[0], topic = args[1], group = args[2], clientId = args[3], protocol = args[4],
                assignor = args[5];
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 20);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        if (protocol.equals("classic")) {
            // Short sessions so a killed member is noticed quickly (the broker's minimum is 6 s).
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
                    assignor.equals("range") ? RangeAssignor.class.getName() : CooperativeStickyAssignor.class.getName());
        } else if (!assignor.equals("-")) {
            p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);
        }

        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        AtomicBoolean stop = new AtomicBoolean(false);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop.set(true);
            consumer.wakeup();
            try {
                closed.await(20, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }));
        consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                if (ps.isEmpty()) return;
                try {
                    consumer.commitSync();
                } catch (KafkaException e) {
                    emit(event("commit_error", e.getClass().getSimpleName()));
                }
                emit(event("revoked", partitions(ps)));
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                emit(event("assigned", partitions(ps)));
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> ps) {
                emit(event("lost", partitions(ps)));
            }
        });
        try {
            while (!stop.get()) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(300));
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("p", r.partition());
                    m.put("o", r.offset());
                    emit(m);
                }
                if (!records.isEmpty()) {
                    try {
                        consumer.commitSync();
                    } catch (WakeupException e) {
                        throw e;
                    } catch (KafkaException e) {
                        // A rebalance can take partitions away between poll and commit; the next
                        // owner re-reads from the last commit.
                        emit(event("commit_error", e.getClass().getSimpleName()));
                    }
                    // Pace the consumer like an application doing work, so a test can stop a
                    // member while its partitions still have records.
                    Thread.sleep(20);
                }
            }
        } catch (WakeupException e) {
            // shutdown
        } finally {
            consumer.close(Duration.ofSeconds(10));
            closed.countDown();
        }
    }
}
