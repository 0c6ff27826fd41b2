package dev.vltava.compat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * The machine-wide fault-test lock: an exclusive {@code flock(2)} on
 * {@code ${java.io.tmpdir}/vltava-fault-tests.lock}, the lock the Rust fault suites take
 * ({@code compat-tests/src/cluster/faults.rs}, {@code MachineLock}), so that fault suites of any
 * language never run at the same time on one machine.
 *
 * <p>Java's {@code FileChannel.lock()} takes a POSIX record lock ({@code fcntl}), which on Linux is
 * independent of {@code flock}: it would not exclude the Rust suites. So the lock is held by a child
 * {@code flock(1)} process (util-linux) whose command waits for its standard input to close: the lock
 * is released by {@link #close()}, and by the kernel when this JVM dies however it dies (the pipe
 * closes, the child exits).
 */
final class MachineLock implements AutoCloseable {
    private static final String HELD = "vltava-fault-lock-held";
    private final Process holder;

    private MachineLock(Process holder) {
        this.holder = holder;
    }

    /** Waits (at most {@code patience}) for the lock. */
    static MachineLock acquire(Duration patience) {
        Path file = Path.of(System.getProperty("java.io.tmpdir"), "vltava-fault-tests.lock");
        Process p;
        try {
            p = new ProcessBuilder("flock", "--exclusive", file.toString(),
                    "sh", "-c", "echo " + HELD + "; exec cat >/dev/null")
                    .redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot run flock(1) for the fault-test lock " + file, e);
        }
        MachineLock lock = new MachineLock(p);
        // The first line is printed once flock holds the lock; a watchdog bounds the wait.
        Thread watchdog = new Thread(() -> {
            try {
                if (!p.waitFor(patience.toMillis(), TimeUnit.MILLISECONDS)) {
                    p.destroyForcibly();
                }
            } catch (InterruptedException e) {
                // acquired: the watchdog is no longer needed
            }
        }, "fault-lock-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        try {
            BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            String line = r.readLine();
            if (!HELD.equals(line)) {
                lock.close();
                throw new IllegalStateException("the fault-test lock " + file + " was not acquired within "
                        + patience + " (flock said: " + line + ")");
            }
        } catch (IOException e) {
            lock.close();
            throw new IllegalStateException("waiting for the fault-test lock " + file, e);
        } finally {
            watchdog.interrupt();
        }
        return lock;
    }

    @Override
    public void close() {
        try {
            holder.getOutputStream().close();
            if (!holder.waitFor(10, TimeUnit.SECONDS)) {
                holder.destroyForcibly();
            }
        } catch (IOException e) {
            holder.destroyForcibly();
        } catch (InterruptedException e) {
            holder.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
