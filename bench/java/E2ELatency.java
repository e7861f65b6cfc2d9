// End-to-end latency at a fixed rate: one producer sends RATE records/s (the send time is in the
// first 8 bytes of the value), one consumer in the same JVM (partition 0 assigned, no group)
// measures produce->consume time with the same clock. Prints one JSON object.
//   java -cp 'KAFKA_LIBS/*:CLASSES' E2ELatency BOOTSTRAP TOPIC RATE NUM_RECORDS SIZE ACKS [key=value ...]
// key=value pairs go to both the producer and the consumer (unknown keys are only warned about).
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

public class E2ELatency {
    static double pct(long[] sorted, int n, double q) {
        if (n == 0) return Double.NaN;
        int i = (int) Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1));
        return sorted[i] / 1e6;
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }
    }

    static void run(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        double rate = Double.parseDouble(args[2]);
        int n = Integer.parseInt(args[3]);
        int size = Math.max(8, Integer.parseInt(args[4]));
        String acks = args[5];
        Properties extra = new Properties();
        for (int i = 6; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            extra.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("enable.auto.commit", "false");
        cp.put("auto.offset.reset", "latest");
        cp.putAll(extra);
        Properties pp = new Properties();
        pp.put("bootstrap.servers", bootstrap);
        pp.put("acks", acks);
        pp.put("linger.ms", "0");
        pp.putAll(extra);

        long[] e2e = new long[n];
        long[] ack = new long[n];
        AtomicInteger got = new AtomicInteger();
        AtomicInteger acked = new AtomicInteger();
        AtomicInteger errors = new AtomicInteger();
        TopicPartition tp = new TopicPartition(topic, 0);
        KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        c.assign(List.of(tp));
        c.seekToEnd(List.of(tp));
        c.position(tp); // resolve the start offset before anything is produced
        CountDownLatch done = new CountDownLatch(1);
        Thread ct = new Thread(() -> {
            try {
                long deadline = Long.MAX_VALUE;
                while (got.get() < n) {
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                        long now = System.nanoTime();
                        int i = got.getAndIncrement();
                        if (i < n) e2e[i] = now - ByteBuffer.wrap(r.value()).getLong();
                    }
                    if (deadline == Long.MAX_VALUE && acked.get() + errors.get() >= n) deadline = System.nanoTime() + 10_000_000_000L;
                    if (System.nanoTime() > deadline) break;
                }
            } finally {
                c.close();
                done.countDown();
            }
        });
        ct.setDaemon(true);
        ct.start();

        KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer());
        p.partitionsFor(topic); // metadata before the clock starts
        long start = System.nanoTime();
        double intervalNs = 1e9 / rate;
        for (int i = 0; i < n; i++) {
            long due = start + (long) (i * intervalNs);
            long now;
            while ((now = System.nanoTime()) < due) {
                long wait = due - now;
                if (wait > 200_000) LockSupport_parkNanos(wait - 100_000);
            }
            byte[] v = new byte[size];
            long sent = System.nanoTime();
            ByteBuffer.wrap(v).putLong(sent);
            p.send(new ProducerRecord<>(topic, 0, null, v), (md, ex) -> {
                if (ex != null) { errors.incrementAndGet(); return; }
                int k = acked.getAndIncrement();
                if (k < n) ack[k] = System.nanoTime() - sent;
            });
        }
        p.flush();
        double sendSecs = (System.nanoTime() - start) / 1e9;
        p.close();
        done.await(30, TimeUnit.SECONDS);
        int g = Math.min(got.get(), n), a = Math.min(acked.get(), n);
        Arrays.sort(e2e, 0, g);
        Arrays.sort(ack, 0, a);
        System.out.printf(Locale.ROOT,
            "{\"tool\":\"java-e2e-latency\",\"records\":%d,\"received\":%d,\"errors\":%d,\"rate\":%.1f,\"achieved_rate\":%.1f,"
            + "\"e2e_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f},"
            + "\"ack_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f}}%n",
            n, g, errors.get(), rate, n / sendSecs,
            pct(e2e, g, 0.5), pct(e2e, g, 0.99), pct(e2e, g, 0.999), g > 0 ? e2e[g - 1] / 1e6 : Double.NaN,
            pct(ack, a, 0.5), pct(ack, a, 0.99), pct(ack, a, 0.999), a > 0 ? ack[a - 1] / 1e6 : Double.NaN);
        System.exit(g == n && errors.get() == 0 ? 0 : 1);
    }

    static void LockSupport_parkNanos(long ns) { java.util.concurrent.locks.LockSupport.parkNanos(ns); }
}
