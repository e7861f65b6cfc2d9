// Generates testdata/kafka-4.1.2-jsonconverter.txt with Kafka's own JsonConverter (connect-json 4.1.2
// from Maven Central): javac -cp <connect-json, connect-api, kafka-clients, jackson-core, -databind, -annotations, jackson-module-blackbird, slf4j-api jars> Gen.java
// && java -cp ...:. Gen > kafka-4.1.2-jsonconverter.txt. tests/kafka_fixtures.rs builds the same cases.
import org.apache.kafka.connect.data.*;
import org.apache.kafka.connect.json.JsonConverter;
import java.util.*;
import java.math.BigDecimal;
public class Gen {
  static String out(boolean schemas, Schema s, Object v) {
    JsonConverter c = new JsonConverter();
    c.configure(Map.of("schemas.enable", String.valueOf(schemas)), false);
    byte[] b = c.fromConnectData("t", s, v);
    return b == null ? "null" : new String(b, java.nio.charset.StandardCharsets.UTF_8);
  }
  static String outNum(Schema s, Object v) {
    JsonConverter c = new JsonConverter();
    c.configure(Map.of("schemas.enable", "false", "decimal.format", "NUMERIC"), false);
    return new String(c.fromConnectData("t", s, v));
  }
  public static void main(String[] a) {
    System.out.println(out(true, Schema.STRING_SCHEMA, "hello"));
    System.out.println(out(true, Schema.OPTIONAL_INT32_SCHEMA, 42));
    System.out.println(out(true, Schema.FLOAT64_SCHEMA, 1e10));
    System.out.println(out(true, Schema.BYTES_SCHEMA, "hi!".getBytes()));
    System.out.println(out(true, null, "x"));
    System.out.println(out(true, Schema.OPTIONAL_STRING_SCHEMA, null));
    Schema user = SchemaBuilder.struct().name("com.example.User").version(2).doc("a user")
      .field("id", Schema.INT64_SCHEMA)
      .field("name", Schema.OPTIONAL_STRING_SCHEMA)
      .field("tags", SchemaBuilder.array(Schema.STRING_SCHEMA).optional().build())
      .field("score", SchemaBuilder.float32().defaultValue(1.5f).build())
      .field("day", org.apache.kafka.connect.data.Date.SCHEMA).build();
    Struct s = new Struct(user).put("id", 7L).put("name", "ann").put("tags", List.of("a","b"))
      .put("day", new java.util.Date(19000L * 86400000L));
    System.out.println(out(true, user, s));
    System.out.println(out(false, user, s));
    Map<String,Integer> m = new LinkedHashMap<>(); m.put("a",1); m.put("b",2);
    System.out.println(out(false, SchemaBuilder.map(Schema.STRING_SCHEMA, Schema.INT32_SCHEMA).build(), m));
    System.out.println(out(true, SchemaBuilder.map(Schema.INT32_SCHEMA, Schema.STRING_SCHEMA).build(), Map.of(1, "x")));
    System.out.println(out(true, Decimal.schema(2), new BigDecimal("12.34")));
    System.out.println(outNum(Decimal.schema(2), new BigDecimal("-12.34")));
    for (double d : new double[]{1.0, 0.0, -0.0, 1.5, 123456.789, 1e7, 1e10, 12345678.9, 0.001, 0.0001, -2.5e-5, 100.0})
      System.out.print(out(false, Schema.FLOAT64_SCHEMA, d) + " ");
    System.out.println();
    System.out.println(out(false, Schema.FLOAT32_SCHEMA, 1.1f) + " " + out(false, Schema.FLOAT32_SCHEMA, 3.0e9f));
    System.out.println(out(false, Schema.STRING_SCHEMA, "q\"\n\u0001é\t/"));
  }
}
