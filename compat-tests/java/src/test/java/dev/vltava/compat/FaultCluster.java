package dev.vltava.compat;

import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

/**
 * What a fault scenario runs on: the machine-wide fault-test lock ({@link MachineLock}; fault
 * scenarios are timing-sensitive and run one at a time on a machine), a 3-node cluster with the
 * given broker properties, and an admin client that gives up on a paused node soon.
 */
final class FaultCluster implements AutoCloseable {
    final Cluster cluster;
    final Admin admin;
    private final MachineLock lock;

    private FaultCluster(MachineLock lock, Cluster cluster, Admin admin) {
        this.lock = lock;
        this.cluster = cluster;
        this.admin = admin;
    }

    static FaultCluster start(Map<String, String> properties) {
        MachineLock lock = MachineLock.acquire(Duration.ofMinutes(15));
        try {
            Cluster cluster = Cluster.start(3, properties);
            Properties p = new Properties();
            p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrapAll());
            // A paused node must not hold an answer for long: ask another one soon.
            p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 3_000);
            p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 10_000);
            return new FaultCluster(lock, cluster, Admin.create(p));
        } catch (RuntimeException e) {
            lock.close();
            throw e;
        }
    }

    @Override
    public void close() {
        try {
            admin.close(Duration.ofSeconds(5));
            cluster.close();
        } finally {
            lock.close();
        }
    }
}
