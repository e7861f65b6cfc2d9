package dev.strom.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;

/**
 * The topologies of strom-streams' examples (crates/streams/examples), written with Java Kafka
 * Streams, so the compat suite can run both on the same input and compare their output topics.
 * The command line is the examples' own:
 *
 * <pre>
 *   StreamsApps wordcount|windowed-counts --bootstrap-servers B --input IN --output OUT
 *       --application-id ID --state-dir DIR [--commit-interval-ms N] [--config KEY=VALUE]...
 * </pre>
 *
 * Runs until SIGTERM; prints "STATE RUNNING" (and every later state) on stdout.
 */
public final class StreamsApps {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            throw new IllegalArgumentException("usage: StreamsApps wordcount|windowed-counts --input ... (see the class doc)");
        }
        String app = args[0];
        Properties props = new Properties();
        String input = null;
        String output = null;
        for (int i = 1; i < args.length; i += 2) {
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("missing value after " + args[i]);
            }
            String v = args[i + 1];
            switch (args[i]) {
                case "--bootstrap-servers" -> props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, v);
                case "--input" -> input = v;
                case "--output" -> output = v;
                case "--application-id" -> props.put(StreamsConfig.APPLICATION_ID_CONFIG, v);
                case "--state-dir" -> props.put(StreamsConfig.STATE_DIR_CONFIG, v);
                case "--commit-interval-ms" -> props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, v);
                case "--config" -> {
                    int eq = v.indexOf('=');
                    if (eq < 0) {
                        throw new IllegalArgumentException("--config takes KEY=VALUE, got " + v);
                    }
                    props.put(v.substring(0, eq).trim(), v.substring(eq + 1).trim());
                }
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if (input == null || output == null) {
            throw new IllegalArgumentException("--input and --output are required");
        }
        Topology topology = switch (app) {
            case "wordcount" -> wordcount(input, output);
            case "windowed-counts" -> windowedCounts(input, output);
            default -> throw new IllegalArgumentException("unknown app " + app);
        };
        KafkaStreams streams = new KafkaStreams(topology, props);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(20));
            done.countDown();
        }));
        streams.start();
        done.await();
    }

    /** As strom's wordcount example: lower-case, split on anything not a letter or digit. */
    static Topology wordcount(String input, String output) {
        StreamsBuilder b = new StreamsBuilder();
        b.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .flatMapValues(line -> words(line))
            .groupBy((k, w) -> w, Grouped.with(Serdes.String(), Serdes.String()))
            .count(Materialized.as("counts-store"))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return b.build();
    }

    static List<String> words(String line) {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        line.toLowerCase(Locale.ROOT).codePoints().forEach(c -> {
            if (Character.isLetterOrDigit(c)) {
                cur.appendCodePoint(c);
            } else if (cur.length() > 0) {
                out.add(cur.toString());
                cur.setLength(0);
            }
        });
        if (cur.length() > 0) {
            out.add(cur.toString());
        }
        return out;
    }

    /**
     * As strom's windowed-counts example: per key, tumbling 1 min, hopping 1 min every 30 s,
     * sliding 1 min (all with 10 s grace) and 30 s-gap sessions (10 s grace), one output topic each.
     */
    static Topology windowedCounts(String input, String output) {
        StreamsBuilder b = new StreamsBuilder();
        KGroupedStream<String, String> grouped = b.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey(Grouped.with(Serdes.String(), Serdes.String()));
        Duration size = Duration.ofSeconds(60);
        Duration grace = Duration.ofSeconds(10);
        var windowed = WindowedSerdes.timeWindowedSerdeFrom(String.class, size.toMillis());
        grouped.windowedBy(TimeWindows.ofSizeAndGrace(size, grace))
            .count(Materialized.as("tumbling-counts"))
            .toStream()
            .to(output, Produced.with(windowed, Serdes.Long()));
        grouped.windowedBy(TimeWindows.ofSizeAndGrace(size, grace).advanceBy(Duration.ofSeconds(30)))
            .count(Materialized.as("hopping-counts"))
            .toStream()
            .to(output + "-hopping", Produced.with(windowed, Serdes.Long()));
        grouped.windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(size, grace))
            .count(Materialized.as("sliding-counts"))
            .toStream()
            .to(output + "-sliding", Produced.with(windowed, Serdes.Long()));
        grouped.windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofSeconds(30), grace))
            .count(Materialized.as("session-counts"))
            .toStream()
            .to(output + "-session", Produced.with(WindowedSerdes.sessionWindowedSerdeFrom(String.class), Serdes.Long()));
        return b.build();
    }
}
