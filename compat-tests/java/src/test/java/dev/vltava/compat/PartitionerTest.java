package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The default partitioner puts a keyed record where Kafka's murmur2 says; consumers find it there. */
class PartitionerTest {
    private static Broker broker;

    @BeforeAll
    static void start() {
        broker = Broker.start();
    }

    @AfterAll
    static void stop() {
        broker.close();
    }

    @Test
    void keyedRecordsLandInTheMurmur2Partition() throws Exception {
        int partitions = 6;
        String topic = Clients.unique("murmur");
        Clients.createTopic(broker, topic, partitions);
        Map<String, Integer> expected = new HashMap<>();
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            for (int i = 0; i < 60; i++) {
                String key = "key-" + i;
                int want = Utils.toPositive(Utils.murmur2(key.getBytes(StandardCharsets.UTF_8))) % partitions;
                expected.put(key, want);
                RecordMetadata md = p.send(new ProducerRecord<>(topic, key, "v" + i)).get();
                assertEquals(want, md.partition(), "producer's partition for " + key);
            }
        }
        assertEquals(partitions, expected.values().stream().distinct().count(), "keys spread over every partition");
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, null)) {
            List<TopicPartition> tps = new java.util.ArrayList<>();
            for (int i = 0; i < partitions; i++) {
                tps.add(new TopicPartition(topic, i));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            for (ConsumerRecord<String, String> r : Clients.pollRecords(c, expected.size())) {
                assertEquals(expected.get(r.key()), r.partition(), "consumer found " + r.key() + " here");
            }
        }
    }
}
