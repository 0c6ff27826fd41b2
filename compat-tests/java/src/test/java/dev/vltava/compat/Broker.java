package dev.vltava.compat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The real vltava binary on an ephemeral port with a fresh data directory.
 *
 * <p>Readiness is the broker's own log line {@code accepting connections addr=HOST:PORT}; a reader
 * thread drains its output (stdout and stderr merged) for its whole life so the pipe never fills,
 * and keeps the last lines for failure messages. {@link #restart()} kills it and starts it again on
 * the same data directory and port.
 */
public final class Broker implements AutoCloseable {
    private static final Pattern READY =
            Pattern.compile("accepting connections.*?addr=[\"']?([^\\s\"',]+:\\d+)");
    private static final Pattern ANSI = Pattern.compile("\u001b\\[[0-9;]*[A-Za-z]");
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    private static final int LOG_LINES = 400;

    private final Path tmp;
    private final Path dataDir;
    private final Path configFile;
    private final Deque<String> logs = new ArrayDeque<>();
    private Process process;
    private String bootstrap;
    private int generation;

    private Broker(Path tmp, String extraConfig) throws IOException {
        this.tmp = tmp;
        this.dataDir = tmp.resolve("data");
        this.configFile = tmp.resolve("vltava.toml");
        // No initial rebalance delay (Kafka's test clusters set it to 0 too) and a small offsets
        // topic, so group tests do not wait 3 s per group nor create 50 partitions.
        Files.writeString(configFile, "group_initial_rebalance_delay_ms = 0\n"
                + "offsets_topic_num_partitions = 3\n" + extraConfig);
    }

    /** Starts a broker with the test defaults. */
    public static Broker start() {
        return start("");
    }

    /** Starts a broker whose config file also has {@code extraConfig} (TOML lines, top level). */
    public static Broker start(String extraConfig) {
        try {
            Broker b = new Broker(Files.createTempDirectory("vltava-java-"), extraConfig);
            b.launch("127.0.0.1:0");
            return b;
        } catch (IOException e) {
            throw new IllegalStateException("cannot start the broker", e);
        }
    }

    static Path binary() {
        String env = System.getenv("VLTAVA_BIN");
        if (env != null && !env.isEmpty()) {
            return Paths.get(env);
        }
        // compat-tests/java -> repository root
        Path root = Paths.get("").toAbsolutePath().getParent().getParent();
        return root.resolve("target/debug/vltava");
    }

    public String bootstrap() {
        return bootstrap;
    }

    public Path dataDir() {
        return dataDir;
    }

    /** How many times the process was started (1, then one more per {@link #restart()}). */
    public int generation() {
        return generation;
    }

    /** SIGKILL, then start again on the same data directory and port. */
    public void restart() {
        restartAfter(() -> {});
    }

    /** SIGKILL, run {@code whileDown} (e.g. damage the data directory), then start again as {@link #restart()}. */
    public void restartAfter(Runnable whileDown) {
        killHard();
        whileDown.run();
        try {
            launch(bootstrap);
        } catch (IOException e) {
            throw new IllegalStateException("cannot restart the broker", e);
        }
    }

    private void launch(String listen) throws IOException {
        Path bin = binary();
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException(
                    "broker binary " + bin + " missing: run `cargo build -p vltava` or set VLTAVA_BIN");
        }
        List<String> cmd = new ArrayList<>(List.of(bin.toString(), "--config", configFile.toString(),
                "--listen", listen, "--data-dir", dataDir.toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("RUST_LOG", envOr("VLTAVA_TEST_RUST_LOG", "info"));
        pb.environment().put("NO_COLOR", "1");
        int gen = ++generation;
        Process p = pb.start();
        p.getOutputStream().close();
        CompletableFuture<String> ready = new CompletableFuture<>();
        Thread pump = new Thread(() -> drain(p, gen, ready), "vltava-log-" + gen);
        pump.setDaemon(true);
        pump.start();
        String addr;
        try {
            addr = ready.get(READY_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            p.destroyForcibly();
            throw new IllegalStateException("no readiness line within " + READY_TIMEOUT + ": " + cmd
                    + "\n" + logText());
        } catch (Exception e) {
            p.destroyForcibly();
            throw new IllegalStateException("broker start failed: " + e, e);
        }
        if (addr == null) {
            throw new IllegalStateException("broker exited before it was ready: " + cmd + "\n" + logText());
        }
        this.process = p;
        this.bootstrap = addr;
    }

    private void drain(Process p, int gen, CompletableFuture<String> ready) {
        try (BufferedReader r = new BufferedReader(
                new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            String raw;
            while ((raw = r.readLine()) != null) {
                String line = ANSI.matcher(raw).replaceAll("");
                synchronized (logs) {
                    logs.addLast("[" + gen + "] " + line);
                    while (logs.size() > LOG_LINES) {
                        logs.removeFirst();
                    }
                }
                if (!ready.isDone()) {
                    Matcher m = READY.matcher(line);
                    if (m.find()) {
                        ready.complete(m.group(1));
                    }
                }
            }
        } catch (IOException e) {
            // the process is gone
        } finally {
            ready.complete(null);
        }
    }

    /** The broker's last log lines, for failure messages. */
    public String logText() {
        synchronized (logs) {
            return String.join("\n", logs);
        }
    }

    private void killHard() {
        Process p = process;
        if (p == null) {
            return;
        }
        p.destroyForcibly();
        try {
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("broker did not die on SIGKILL");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        process = null;
    }

    @Override
    public void close() {
        killHard();
        try (Stream<Path> walk = Files.walk(tmp)) {
            walk.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        } catch (IOException e) {
            // a temp dir left behind is harmless
        }
    }

    private static String envOr(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }
}
