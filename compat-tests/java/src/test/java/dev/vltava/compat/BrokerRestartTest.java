package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** A group consumer and a producer that outlive a kill -9 and restart of the broker. */
class BrokerRestartTest {
    private Broker broker;

    @BeforeEach
    void start() {
        broker = Broker.start();
    }

    @AfterEach
    void stop() {
        broker.close();
    }

    @Test
    void consumerAndProducerCarryOnAcrossABrokerRestart() throws Exception {
        String topic = Clients.unique("restart");
        Clients.createTopic(broker, topic, 1);
        String group = Clients.unique("g-restart");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = Clients.producer(broker);
                KafkaConsumer<String, String> c = Clients.consumer(broker, group)) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "before-" + i)).get();
            }
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> first = Clients.pollRecords(c, 10);
            assertEquals("before-9", first.get(9).value());
            c.commitSync();

            String before = broker.bootstrap();
            broker.restart();
            assertEquals(2, broker.generation(), "a second process");
            assertEquals(before, broker.bootstrap(), "on the same port");

            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "after-" + i)).get();
            }
            List<ConsumerRecord<String, String>> second = Clients.pollRecords(c, 10);
            assertEquals(10, second.get(0).offset(), "carries on where it was");
            assertEquals("after-9", second.get(9).value());
            c.commitSync();
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.of(tp));
            assertEquals(20, committed.get(tp).offset());
        }
    }
}
