package dev.vltava.compat;

import java.util.function.Supplier;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * A JUnit extension that prints a cluster's nodes' last log lines when a test fails (they land in
 * the test's output under target/surefire-reports). Registered with
 * {@code @RegisterExtension final TestWatcher logs = new ClusterLogsOnFailure(() -> cluster);}.
 */
final class ClusterLogsOnFailure implements TestWatcher {
    private final Supplier<Cluster> cluster;

    ClusterLogsOnFailure(Supplier<Cluster> cluster) {
        this.cluster = cluster;
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        Cluster c = cluster.get();
        if (c != null) {
            System.err.println(c.allLogs());
        }
    }
}
