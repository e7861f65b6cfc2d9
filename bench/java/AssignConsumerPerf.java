// Consume-only throughput with the Java client, partitions assigned directly (no group),
// so it runs against brokers without a group coordinator. Prints one JSON object.
//   java -cp 'KAFKA_LIBS/*:CLASSES' AssignConsumerPerf BOOTSTRAP TOPIC MESSAGES [TIMEOUT_MS] [key=value ...]
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class AssignConsumerPerf {
    public static void main(String[] args) {
        String bootstrap = args[0], topic = args[1];
        long messages = Long.parseLong(args[2]);
        long timeoutMs = args.length > 3 ? Long.parseLong(args[3]) : 10000;
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        for (int i = 4; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            p.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        long t0 = System.nanoTime();
        long records = 0, bytes = 0;
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            long lastData = System.nanoTime();
            while (records < messages) {
                ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                if (rs.isEmpty()) {
                    if ((System.nanoTime() - lastData) / 1_000_000 > timeoutMs) break;
                    continue;
                }
                lastData = System.nanoTime();
                for (ConsumerRecord<byte[], byte[]> r : rs) {
                    records++;
                    if (r.value() != null) bytes += r.value().length;
                }
            }
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT,
            "{\"tool\":\"java-assign-consume\",\"records\":%d,\"bytes\":%d,\"elapsed_ms\":%.1f,\"records_per_sec\":%.1f,\"mb_per_sec\":%.3f}%n",
            records, bytes, secs * 1000, records / secs, bytes / secs / 1048576.0);
        if (records < messages) System.exit(1);
    }
}
