package dev.vltava.compat;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Kafka's command-line tools (the main classes behind {@code kafka-topics.sh} and friends, from the
 * kafka-tools artifact) run as {@code java} subprocesses on this test classpath, so a tool's
 * {@code Exit.exit} ends its own JVM, not the test's.
 */
public final class Tools {
    public static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    public static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
    public static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    public static final String CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    public static final String CONFIGS = "org.apache.kafka.tools.ConfigCommand";
    public static final String GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell";
    public static final String DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand";
    public static final String TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand";

    private static final long TIMEOUT_SECONDS = 90;

    private Tools() {}

    /** A finished tool run: its exit code and what it printed. */
    public record Result(int exitCode, String stdout, String stderr, String command) {
        /** stdout's non-blank lines, trimmed at the end. */
        public List<String> lines() {
            return stdout.lines().map(String::stripTrailing).filter(l -> !l.isBlank()).toList();
        }

        /** Fails unless the tool exited 0. */
        public Result ok() {
            if (exitCode != 0) {
                throw new AssertionError("tool failed (exit " + exitCode + "): " + this);
            }
            return this;
        }

        @Override
        public String toString() {
            return command + "\n--- stdout ---\n" + stdout + "\n--- stderr ---\n" + stderr;
        }
    }

    /** The test's real classpath (Surefire runs tests through a manifest-only booter jar). */
    static String classpath() {
        String cp = System.getProperty("surefire.test.class.path");
        return cp == null || cp.isEmpty() ? System.getProperty("java.class.path") : cp;
    }

    /** Runs {@code mainClass} with {@code args}, {@code stdin} (may be null) as its standard input. */
    public static Result run(String mainClass, String stdin, String... args) {
        Path java = Paths.get(System.getProperty("java.home"), "bin", "java");
        List<String> cmd = new ArrayList<>(List.of(java.toString(),
                // Short-lived JVMs on 2 shared cores: client compiler only, serial GC, small heap.
                "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m", "-cp", classpath(), mainClass));
        cmd.addAll(Arrays.asList(args));
        String shown = mainClass.substring(mainClass.lastIndexOf('.') + 1) + " " + String.join(" ", args);
        File out = null;
        File err = null;
        try {
            out = File.createTempFile("vltava-tool-", ".out");
            err = File.createTempFile("vltava-tool-", ".err");
            Process p = new ProcessBuilder(cmd).redirectOutput(out).redirectError(err).start();
            try (OutputStream in = p.getOutputStream()) {
                if (stdin != null) {
                    in.write(stdin.getBytes(StandardCharsets.UTF_8));
                }
            }
            if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                throw new AssertionError("tool still running after " + TIMEOUT_SECONDS + " s: " + shown
                        + "\n--- stdout ---\n" + Files.readString(out.toPath()) + "\n--- stderr ---\n"
                        + Files.readString(err.toPath()));
            }
            return new Result(p.exitValue(), Files.readString(out.toPath()), Files.readString(err.toPath()), shown);
        } catch (IOException e) {
            throw new IllegalStateException("cannot run " + shown, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running " + shown);
        } finally {
            if (out != null) {
                out.delete();
            }
            if (err != null) {
                err.delete();
            }
        }
    }
}
