package dev.vltava.compat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A main class of the test sources run in its own {@code java} process on the test classpath, so it
 * can be killed with SIGKILL ({@link #kill()}) like a crashing application. A reader thread drains
 * its output (stdout and stderr merged) for its whole life and keeps the last lines.
 */
public final class ChildJvm implements AutoCloseable {
    private static final int LOG_LINES = 300;

    private final String name;
    private final Process process;
    private final Deque<String> lines = new ArrayDeque<>();
    /** Every line printed so far that starts with "@" (the child's protocol lines), in order. */
    private final List<String> events = new ArrayList<>();

    private ChildJvm(String name, Process process) {
        this.name = name;
        this.process = process;
        Thread pump = new Thread(this::drain, "child-" + name);
        pump.setDaemon(true);
        pump.start();
    }

    /** Starts {@code mainClass} with {@code args}. */
    public static ChildJvm start(String mainClass, String... args) {
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                "-Xmx256m", "-cp", Tools.classpath(), mainClass));
        cmd.addAll(Arrays.asList(args));
        String name = mainClass.substring(mainClass.lastIndexOf('.') + 1);
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            return new ChildJvm(name, p);
        } catch (IOException e) {
            throw new IllegalStateException("cannot start " + cmd, e);
        }
    }

    private void drain() {
        try (BufferedReader r = new BufferedReader(
                new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                synchronized (lines) {
                    lines.addLast(line);
                    while (lines.size() > LOG_LINES) {
                        lines.removeFirst();
                    }
                    if (line.startsWith("@")) {
                        events.add(line);
                    }
                    lines.notifyAll();
                }
            }
        } catch (IOException e) {
            // the process is gone
        }
    }

    /** Waits for a protocol line ("@...") matching {@code match}; fails if the child exits first. */
    public String awaitEvent(Predicate<String> match, Duration timeout) {
        Instant end = Instant.now().plus(timeout);
        synchronized (lines) {
            while (true) {
                Optional<String> hit = events.stream().filter(match).findFirst();
                if (hit.isPresent()) {
                    return hit.get();
                }
                if (!process.isAlive()) {
                    throw new AssertionError(name + " exited (" + process.exitValue() + ") before the event:\n"
                            + output());
                }
                long left = Duration.between(Instant.now(), end).toMillis();
                if (left <= 0) {
                    throw new AssertionError(name + ": no such event within " + timeout + ":\n" + output());
                }
                try {
                    lines.wait(Math.min(left, 200));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new AssertionError("interrupted");
                }
            }
        }
    }

    /** Fails if the child has exited. */
    public void assertAlive() {
        if (!process.isAlive()) {
            throw new AssertionError(name + " exited (" + process.exitValue() + "):\n" + output());
        }
    }

    /** The child's last output lines. */
    public String output() {
        synchronized (lines) {
            return String.join("\n", lines);
        }
    }

    /** SIGKILL, and waits until the process is gone. */
    public void kill() {
        process.destroyForcibly();
        try {
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException(name + " did not die on SIGKILL");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            kill();
        }
    }
}
