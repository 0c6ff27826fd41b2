package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Java client over the broker's SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 with the client's own
 * sasl.jaas.config) and TLS listeners: SASL_PLAINTEXT, SSL with a PEM truststore, mutual TLS with a
 * PEM keystore, and SASL_SSL. Certificates come from compat-tests/tls/make-certs.sh (openssl).
 */
class SecurityTest {
    private static final String ALICE = "alice-secret";
    private static final String BOB = "b0b,=pass";
    private static final String SASL = "[sasl]\nmechanisms = [\"PLAIN\", \"SCRAM-SHA-256\", \"SCRAM-SHA-512\"]\n"
            + "[sasl.users]\nalice = \"" + ALICE + "\"\nbob = \"" + BOB + "\"\n";
    private static Path certs;

    @BeforeAll
    static void makeCerts() throws Exception {
        certs = Files.createTempDirectory("vltava-java-certs-");
        Path script = Paths.get("").toAbsolutePath().getParent().resolve("tls/make-certs.sh");
        Process p = new ProcessBuilder("bash", script.toString(), certs.toString()).inheritIO().start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "make-certs.sh finished");
        assertEquals(0, p.exitValue(), "make-certs.sh exit code");
    }

    @AfterAll
    static void removeCerts() throws Exception {
        try (Stream<Path> walk = Files.walk(certs)) {
            walk.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        }
    }

    private static String tls(boolean mutual) {
        return "[tls]\ncert_file = \"" + certs.resolve("server.pem") + "\"\nkey_file = \""
                + certs.resolve("server.key") + "\"\n"
                + (mutual ? "client_ca_file = \"" + certs.resolve("ca.pem") + "\"\n" : "");
    }

    private static Map<String, Object> sasl(String protocol, String mechanism, String user, String password) {
        String module = mechanism.equals("PLAIN") ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        return Map.of(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol,
                SaslConfigs.SASL_MECHANISM, mechanism,
                SaslConfigs.SASL_JAAS_CONFIG, module + " required username=\"" + user + "\" password=\""
                        + password + "\";");
    }

    /** SSL with the CA as a PEM truststore file. */
    private static Map<String, Object> trustFile() {
        return Map.of(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM",
                SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, certs.resolve("ca.pem").toString());
    }

    /** SSL with the CA given inline (ssl.truststore.certificates). */
    private static Map<String, Object> trustInline() throws Exception {
        return Map.of(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM",
                SslConfigs.SSL_TRUSTSTORE_CERTIFICATES_CONFIG, Files.readString(certs.resolve("ca.pem")));
    }

    @SafeVarargs
    private static Map<String, Object> merge(Map<String, Object>... maps) {
        Map<String, Object> all = new HashMap<>();
        for (Map<String, Object> m : maps) {
            all.putAll(m);
        }
        return all;
    }

    private static Admin admin(Broker b, Map<String, Object> security) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, b.bootstrap());
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        p.putAll(security);
        return Admin.create(p);
    }

    /**
     * Creates a topic through the admin client, produces five records with the default
     * (idempotent, acks=all) producer and reads them back with a group consumer, all with
     * {@code producerSecurity} / {@code consumerSecurity}.
     */
    private static void roundTrip(Broker b, Map<String, Object> producerSecurity,
            Map<String, Object> consumerSecurity) throws Exception {
        String topic = Clients.unique("secure");
        try (Admin admin = admin(b, producerSecurity)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
            Clients.waitUntil("topic " + topic + " listed", () -> {
                try {
                    return admin.listTopics().names().get().contains(topic);
                } catch (Exception e) {
                    return false;
                }
            });
        }
        try (KafkaProducer<String, String> p = Clients.producer(b, producerSecurity)) {
            for (int i = 0; i < 5; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)).get();
            }
        }
        try (KafkaConsumer<String, String> c = Clients.consumer(b, Clients.unique("secure-group"),
                consumerSecurity)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Clients.pollRecords(c, 5);
            assertEquals(List.of("v0", "v1", "v2", "v3", "v4"), got.stream().map(ConsumerRecord::value).toList());
            assertEquals(List.of("k0", "k1", "k2", "k3", "k4"), got.stream().map(ConsumerRecord::key).toList());
            c.commitSync();
            assertEquals(5, c.committed(Set.of(new TopicPartition(topic, 0)))
                    .get(new TopicPartition(topic, 0)).offset());
        }
    }

    private static boolean causedBy(Throwable t, Class<? extends Throwable> type) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (type.isInstance(c)) {
                return true;
            }
        }
        return false;
    }

    @ParameterizedTest
    @ValueSource(strings = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
    void saslPlaintextRoundTrip(String mechanism) throws Exception {
        try (Broker b = Broker.start(SASL)) {
            Map<String, Object> alice = sasl("SASL_PLAINTEXT", mechanism, "alice", ALICE);
            Map<String, Object> bob = sasl("SASL_PLAINTEXT", mechanism, "bob", BOB);
            roundTrip(b, alice, bob);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
    void saslWrongPasswordFailsWithSaslAuthenticationException(String mechanism) throws Exception {
        try (Broker b = Broker.start(SASL)) {
            Map<String, Object> wrong = sasl("SASL_PLAINTEXT", mechanism, "alice", "not-" + ALICE);
            try (Admin admin = admin(b, wrong)) {
                ExecutionException e = assertThrows(ExecutionException.class,
                        () -> admin.listTopics().names().get());
                assertTrue(causedBy(e, SaslAuthenticationException.class), e.toString());
            }
            Map<String, Object> producer = merge(wrong, Map.of(ProducerConfig.MAX_BLOCK_MS_CONFIG, 20_000));
            try (KafkaProducer<String, String> p = Clients.producer(b, producer)) {
                Exception e = assertThrows(Exception.class,
                        () -> p.send(new ProducerRecord<>("never-created", "v")).get());
                assertTrue(causedBy(e, SaslAuthenticationException.class), e.toString());
            }
            // An unknown user fails the same way.
            try (Admin admin = admin(b, sasl("SASL_PLAINTEXT", mechanism, "mallory", ALICE))) {
                ExecutionException e = assertThrows(ExecutionException.class,
                        () -> admin.describeCluster().clusterId().get());
                assertTrue(causedBy(e, SaslAuthenticationException.class), e.toString());
            }
        }
    }

    @Test
    void sslWithPemTruststoreFileAndInlineCertificates() throws Exception {
        try (Broker b = Broker.start(tls(false))) {
            Map<String, Object> ssl = Map.of(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL");
            roundTrip(b, merge(ssl, trustFile()), merge(ssl, trustInline()));
        }
    }

    @Test
    void mutualTlsWithPemKeystore() throws Exception {
        try (Broker b = Broker.start(tls(true))) {
            Map<String, Object> ssl = Map.of(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL");
            // The producer's key and chain inline; the consumer's from one PEM file (key + certificate).
            Map<String, Object> inline = Map.of(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM",
                    SslConfigs.SSL_KEYSTORE_KEY_CONFIG, Files.readString(certs.resolve("client.key")),
                    SslConfigs.SSL_KEYSTORE_CERTIFICATE_CHAIN_CONFIG, Files.readString(certs.resolve("client.pem")));
            Path keystore = certs.resolve("client-keystore.pem");
            Files.writeString(keystore, Files.readString(certs.resolve("client.key"))
                    + Files.readString(certs.resolve("client.pem")));
            Map<String, Object> file = Map.of(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM",
                    SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, keystore.toString());
            roundTrip(b, merge(ssl, trustFile(), inline), merge(ssl, trustFile(), file));

            // Without a client certificate the handshake fails.
            try (Admin admin = admin(b, merge(ssl, trustFile()))) {
                ExecutionException e = assertThrows(ExecutionException.class,
                        () -> admin.describeCluster().clusterId().get());
                assertTrue(causedBy(e, SslAuthenticationException.class), e.toString());
            }
        }
    }

    @Test
    void saslSslRoundTrip() throws Exception {
        try (Broker b = Broker.start(tls(false) + SASL)) {
            roundTrip(b, merge(sasl("SASL_SSL", "SCRAM-SHA-512", "bob", BOB), trustFile()),
                    merge(sasl("SASL_SSL", "PLAIN", "alice", ALICE), trustInline()));
        }
    }
}
