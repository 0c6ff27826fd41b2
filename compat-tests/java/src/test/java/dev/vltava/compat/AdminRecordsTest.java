package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeLogDirsResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** AdminClient over a partition's records: listOffsets, deleteRecords, describeLogDirs. */
class AdminRecordsTest {
    private static final long BASE_TS = System.currentTimeMillis() - 60_000;
    private static Broker broker;
    private static Admin admin;

    @BeforeAll
    static void start() {
        broker = Broker.start();
        admin = Clients.admin(broker);
    }

    @AfterAll
    static void stop() {
        admin.close();
        broker.close();
    }

    /** Ten records, timestamps BASE_TS + i s, except record 6 which has the largest (BASE_TS + 100 s). */
    private static TopicPartition tenRecords() throws Exception {
        String topic = Clients.unique("records");
        Clients.createTopic(broker, topic, 1);
        try (KafkaProducer<String, String> p = Clients.producer(broker)) {
            for (int i = 0; i < 10; i++) {
                long ts = i == 6 ? BASE_TS + 100_000 : BASE_TS + i * 1000L;
                p.send(new ProducerRecord<>(topic, 0, ts, "k" + i, "v" + i)).get();
            }
        }
        return new TopicPartition(topic, 0);
    }

    private static ListOffsetsResultInfo offset(TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get();
    }

    @Test
    void listOffsetsEarliestLatestByTimestampAndMaxTimestamp() throws Exception {
        TopicPartition tp = tenRecords();
        assertEquals(0, offset(tp, OffsetSpec.earliest()).offset());
        assertEquals(10, offset(tp, OffsetSpec.latest()).offset());
        ListOffsetsResultInfo byTime = offset(tp, OffsetSpec.forTimestamp(BASE_TS + 2_500));
        assertEquals(3, byTime.offset());
        assertEquals(BASE_TS + 3_000, byTime.timestamp());
        ListOffsetsResultInfo max = offset(tp, OffsetSpec.maxTimestamp());
        assertEquals(6, max.offset());
        assertEquals(BASE_TS + 100_000, max.timestamp());
    }

    @Test
    void deleteRecordsRaisesTheLogStartOffset() throws Exception {
        TopicPartition tp = tenRecords();
        long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp).get()
                .lowWatermark();
        assertEquals(4, low);
        assertEquals(4, offset(tp, OffsetSpec.earliest()).offset());
        assertEquals(10, offset(tp, OffsetSpec.latest()).offset());
    }

    @Test
    void describeLogDirsShowsThePartitionsOnDisk() throws Exception {
        TopicPartition tp = tenRecords();
        int id = admin.describeCluster().controller().get().id();
        DescribeLogDirsResult r = admin.describeLogDirs(List.of(id));
        Map<String, LogDirDescription> dirs = r.allDescriptions().get().get(id);
        assertEquals(1, dirs.size());
        LogDirDescription dir = dirs.values().iterator().next();
        assertTrue(dir.error() == null, "no error: " + dir.error());
        ReplicaInfo info = dir.replicaInfos().get(tp);
        assertTrue(info != null, "partition listed in " + dir.replicaInfos().keySet());
        assertTrue(info.size() > 0, "has bytes on disk");
        assertTrue(dir.totalBytes().orElse(0) > 0, "volume's total bytes");
        assertTrue(dir.usableBytes().orElse(-1) >= 0, "volume's usable bytes");
    }
}
