package dev.vltava.compat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * An nftables table that stops one node from fetching from another: packets from the follower to the
 * leader's Kafka listener and the answers from it are dropped, while the nodes' controller links
 * (metadata quorum, heartbeats) stay up. Deleted on {@link #close()}. The table name carries this
 * JVM's pid, so other suites' tables are left alone.
 */
final class ReplicationCut implements AutoCloseable {
    private final String table = "vltava_javafaults_" + ProcessHandle.current().pid();
    private boolean active;

    /**
     * Cuts {@code followerIp} off {@code leaderIp}:{@code leaderKafkaPort}. Clients connect from
     * 127.0.0.1, so {@code followerIp} must not be that address or the clients would be cut too.
     */
    ReplicationCut(String followerIp, String leaderIp, int leaderKafkaPort) {
        if (followerIp.equals("127.0.0.1")) {
            throw new IllegalArgumentException("the clients' own address 127.0.0.1 cannot be cut");
        }
        String rules = "table inet " + table + " {\n chain input {\n  type filter hook input priority 0;\n"
                + "  ip saddr " + followerIp + " ip daddr " + leaderIp + " tcp dport " + leaderKafkaPort + " drop\n"
                + "  ip saddr " + leaderIp + " ip daddr " + followerIp + " tcp sport " + leaderKafkaPort + " drop\n"
                + " }\n}\n";
        nft(rules, "-f", "-");
        active = true;
    }

    @Override
    public void close() {
        if (active) {
            active = false;
            nft("", "delete", "table", "inet", table);
        }
    }

    private static void nft(String stdin, String... args) {
        String[] cmd = new String[args.length + 1];
        cmd[0] = "nft";
        System.arraycopy(args, 0, cmd, 1, args.length);
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            p.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
            p.getOutputStream().close();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException("nft " + String.join(" ", args) + " failed: " + out);
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot run nft", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted running nft");
        }
    }
}
