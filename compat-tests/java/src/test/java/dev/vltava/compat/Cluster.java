package dev.vltava.compat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A 3-node vltava cluster of real processes: node N listens on 127.0.0.N (a Kafka listener and a
 * controller listener, each on a port free on that address) and is configured by a Kafka KRaft
 * {@code server.properties} file; every node is a broker and a voter of the metadata quorum.
 *
 * <p>Nodes are started together (each waits for its quorum before it serves); readiness is each
 * node's {@code accepting connections addr=} line. Nodes can be killed (-9), terminated (SIGTERM) and
 * started again on the same data directory and ports, and paused (SIGSTOP) and resumed (SIGCONT).
 */
public final class Cluster implements AutoCloseable {
    private static final Pattern READY =
            Pattern.compile("accepting connections.*?addr=[\"']?([^\\s\"',]+:\\d+)");
    private static final Pattern ANSI = Pattern.compile("\u001b\\[[0-9;]*[A-Za-z]");
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    private static final int LOG_LINES = 300;

    private final Path tmp;
    private final Map<String, String> extraProperties;
    private final List<Node> nodes = new ArrayList<>();

    /** One node: its addresses, properties file, and the process while it runs. */
    private static final class Node {
        final int id;
        final String ip;
        final int kafkaPort;
        final int controllerPort;
        final Path properties;
        final Deque<String> logs = new ArrayDeque<>();
        Process process;
        Thread pump;
        int generation;

        Node(int id, String ip, int kafkaPort, int controllerPort, Path properties) {
            this.id = id;
            this.ip = ip;
            this.kafkaPort = kafkaPort;
            this.controllerPort = controllerPort;
            this.properties = properties;
        }
    }

    private Cluster(Path tmp, Map<String, String> extraProperties) {
        this.tmp = tmp;
        this.extraProperties = extraProperties;
    }

    /** How many times a cluster start is tried on fresh ports when a port was taken meanwhile. */
    private static final int START_ATTEMPTS = 3;

    /** Writes the properties of {@code n} nodes and starts them all; returns once every node serves. */
    public static Cluster start(int n) {
        return start(n, Map.of());
    }

    /** As {@link #start(int)}, every node's properties also set (or overridden) by {@code extra}. */
    public static Cluster start(int n, Map<String, String> extra) {
        for (int attempt = 1; ; attempt++) {
            try {
                return startOnce(n, extra);
            } catch (IllegalStateException e) {
                if (attempt >= START_ATTEMPTS || !String.valueOf(e.getMessage()).contains("already in use")) {
                    throw e;
                }
                System.err.println("cluster start attempt " + attempt + ": a port was taken; again on other ports");
            }
        }
    }

    private static Cluster startOnce(int n, Map<String, String> extra) {
        Cluster c;
        try {
            c = new Cluster(Files.createTempDirectory("vltava-java-cluster-"), extra);
            for (int id = 1; id <= n; id++) {
                String ip = "127.0.0." + id;
                c.nodes.add(new Node(id, ip, freePort(ip), freePort(ip), c.tmp.resolve("node" + id + ".properties")));
            }
            c.writeProperties();
        } catch (IOException e) {
            throw new IllegalStateException("cannot prepare the cluster", e);
        }
        try {
            c.startNodes(c.ids());
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
        return c;
    }

    /**
     * A port free on {@code ip} now, drawn below Linux's ephemeral range (32768-60999) so that no
     * outgoing connection of a client running meanwhile can take it before the node binds it.
     */
    private static int freePort(String ip) throws IOException {
        InetAddress addr = InetAddress.getByName(ip);
        for (int i = 0; i < 100; i++) {
            int port = ThreadLocalRandom.current().nextInt(20_000, 32_768);
            try (ServerSocket s = new ServerSocket(port, 1, addr)) {
                return s.getLocalPort();
            } catch (IOException taken) {
                // try another
            }
        }
        throw new IOException("no free port on " + ip + " in 20000-32767");
    }

    private void writeProperties() throws IOException {
        String voters = nodes.stream()
                .map(s -> s.id + "@" + s.ip + ":" + s.controllerPort)
                .collect(Collectors.joining(","));
        for (Node s : nodes) {
            Map<String, String> props = new LinkedHashMap<>();
            props.put("process.roles", "broker,controller");
            props.put("node.id", String.valueOf(s.id));
            props.put("controller.quorum.voters", voters);
            props.put("listeners", "PLAINTEXT://" + s.ip + ":" + s.kafkaPort + ",CONTROLLER://" + s.ip + ":" + s.controllerPort);
            props.put("advertised.listeners", "PLAINTEXT://" + s.ip + ":" + s.kafkaPort);
            props.put("controller.listener.names", "CONTROLLER");
            props.put("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT");
            props.put("inter.broker.listener.name", "PLAINTEXT");
            props.put("log.dirs", tmp.resolve("data" + s.id).toString());
            // Short liveness timers: a dead node is noticed in seconds on a loaded 2-core box.
            props.put("broker.heartbeat.interval.ms", "500");
            props.put("broker.session.timeout.ms", "4000");
            // As Kafka's own test clusters: no initial rebalance delay, a small offsets topic.
            props.put("group.initial.rebalance.delay.ms", "0");
            props.put("offsets.topic.num.partitions", "3");
            props.putAll(extraProperties);
            String text = props.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue())
                    .collect(Collectors.joining("\n", "", "\n"));
            Files.writeString(s.properties, text);
        }
    }

    public List<Integer> ids() {
        return nodes.stream().map(s -> s.id).collect(Collectors.toList());
    }

    private Node node(int id) {
        return nodes.get(id - 1);
    }

    /** The Kafka listener of node {@code id}, "ip:port". */
    public String bootstrap(int id) {
        Node s = node(id);
        return s.ip + ":" + s.kafkaPort;
    }

    /** The address node {@code id} listens on, 127.0.0.{id}. */
    public String ip(int id) {
        return node(id).ip;
    }

    /** The port of node {@code id}'s Kafka listener. */
    public int kafkaPort(int id) {
        return node(id).kafkaPort;
    }

    /** {@code bootstrap.servers} naming every node. */
    public String bootstrapAll() {
        return ids().stream().map(this::bootstrap).collect(Collectors.joining(","));
    }

    public boolean isRunning(int id) {
        Process p = node(id).process;
        return p != null && p.isAlive();
    }

    /**
     * Starts the given (stopped) nodes at once, on their data directories, and waits until each
     * serves: a node of a forming quorum is ready only when the others are up too.
     */
    public void startNodes(List<Integer> ids) {
        List<CompletableFuture<String>> ready = new ArrayList<>();
        for (int id : ids) {
            ready.add(launch(node(id)));
        }
        long end = System.nanoTime() + READY_TIMEOUT.toNanos();
        for (int i = 0; i < ids.size(); i++) {
            Node s = node(ids.get(i));
            String addr;
            try {
                addr = ready.get(i).get(Math.max(0, end - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                throw new IllegalStateException("node " + s.id + " printed no readiness line within "
                        + READY_TIMEOUT + "\n" + logs(s.id));
            } catch (Exception e) {
                throw new IllegalStateException("node " + s.id + " failed to start: " + e, e);
            }
            if (addr == null) {
                throw new IllegalStateException("node " + s.id + " exited before it was ready\n" + logs(s.id));
            }
        }
    }

    /** Starts node {@code id} again on its data directory and ports. */
    public void restart(int id) {
        if (isRunning(id)) {
            kill9(id);
        }
        startNodes(List.of(id));
    }

    private CompletableFuture<String> launch(Node s) {
        Path bin = Broker.binary();
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException(
                    "broker binary " + bin + " missing: run `cargo build -p vltava` or set VLTAVA_BIN");
        }
        ProcessBuilder pb = new ProcessBuilder(bin.toString(), "--config", s.properties.toString())
                .directory(tmp.toFile())
                .redirectErrorStream(true);
        pb.environment().put("RUST_LOG", envOr("VLTAVA_TEST_RUST_LOG", "info"));
        pb.environment().put("NO_COLOR", "1");
        int gen = ++s.generation;
        CompletableFuture<String> ready = new CompletableFuture<>();
        Process p;
        try {
            p = pb.start();
            p.getOutputStream().close();
        } catch (IOException e) {
            throw new IllegalStateException("cannot start node " + s.id, e);
        }
        s.process = p;
        Thread pump = new Thread(() -> drain(s, p, gen, ready), "vltava-node" + s.id + "-" + gen);
        pump.setDaemon(true);
        pump.start();
        s.pump = pump;
        return ready;
    }

    private static void drain(Node s, Process p, int gen, CompletableFuture<String> ready) {
        try (BufferedReader r = new BufferedReader(
                new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            String raw;
            while ((raw = r.readLine()) != null) {
                String line = ANSI.matcher(raw).replaceAll("");
                synchronized (s.logs) {
                    s.logs.addLast("[" + gen + "] " + line);
                    while (s.logs.size() > LOG_LINES) {
                        s.logs.removeFirst();
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

    /** Node {@code id}'s last log lines, for failure messages. */
    public String logs(int id) {
        Node s = node(id);
        synchronized (s.logs) {
            return "--- node " + id + " ---\n" + String.join("\n", s.logs);
        }
    }

    /** Every node's last log lines. */
    public String allLogs() {
        return ids().stream().map(this::logs).collect(Collectors.joining("\n"));
    }

    /** kill -9 and reap. */
    public void kill9(int id) {
        stop(node(id), true);
    }

    /** SIGSTOP: the node freezes (no heartbeats, no answers) with its sockets open. */
    public void pause(int id) {
        signal(id, "STOP");
    }

    /** SIGCONT after {@link #pause}. */
    public void resume(int id) {
        signal(id, "CONT");
    }

    private void signal(int id, String sig) {
        Process p = node(id).process;
        if (p == null || !p.isAlive()) {
            throw new IllegalStateException("node " + id + " is not running");
        }
        try {
            Process kill = new ProcessBuilder("kill", "-" + sig, String.valueOf(p.pid())).inheritIO().start();
            if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
                throw new IllegalStateException("kill -" + sig + " of node " + id + " failed");
            }
        } catch (IOException e) {
            throw new IllegalStateException("kill -" + sig + " of node " + id, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted signalling node " + id);
        }
    }

    /** SIGTERM; returns the exit code (the process is SIGKILLed, and this fails, after 30 s). */
    public int terminate(int id) {
        return stop(node(id), false);
    }

    private int stop(Node s, boolean hard) {
        Process p = s.process;
        if (p == null) {
            throw new IllegalStateException("node " + s.id + " is not running");
        }
        if (hard) {
            p.destroyForcibly();
        } else {
            // Through the handle: Process.destroy() would also close the output pipe, and the
            // broker's goodbye lines would meet a broken pipe.
            p.toHandle().destroy();
        }
        try {
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(30, TimeUnit.SECONDS);
                throw new IllegalStateException("node " + s.id + " did not exit within 30 s of "
                        + (hard ? "SIGKILL" : "SIGTERM") + "\n" + logs(s.id));
            }
            // The process is gone: let the reader take its last lines (the pipe ends at once).
            s.pump.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted stopping node " + s.id);
        } finally {
            s.process = null;
        }
        return p.exitValue();
    }

    @Override
    public void close() {
        for (Node s : nodes) {
            if (s.process != null) {
                s.process.destroyForcibly();
                try {
                    s.process.waitFor(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                s.process = null;
            }
        }
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
