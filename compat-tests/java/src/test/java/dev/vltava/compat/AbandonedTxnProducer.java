package dev.vltava.compat;

import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Run in its own JVM by {@link TransactionsTest}: opens a transaction, writes {@code n} records to
 * partition 0 of a topic, prints {@code @open FIRST LAST} (their offsets) and then waits to be
 * killed, never committing, aborting or closing: a producer that dies mid-transaction.
 *
 * <p>Arguments: bootstrap, transactional.id, topic, n, transaction.timeout.ms.
 */
public final class AbandonedTxnProducer {
    private AbandonedTxnProducer() {}

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[1]);
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, Integer.parseInt(args[4]));
        KafkaProducer<String, String> producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
        producer.initTransactions();
        producer.beginTransaction();
        long first = -1;
        long last = -1;
        for (int i = 0; i < Integer.parseInt(args[3]); i++) {
            RecordMetadata md = producer.send(new ProducerRecord<>(args[2], 0, "k" + i, "dead-" + i)).get();
            first = first < 0 ? md.offset() : first;
            last = md.offset();
        }
        System.out.println("@open " + first + " " + last);
        System.out.flush();
        // Blocks until the parent kills us (or its end of the pipe closes); never closes the producer.
        while (System.in.read() >= 0) {
            // ignore input
        }
        Runtime.getRuntime().halt(0);
    }
}
