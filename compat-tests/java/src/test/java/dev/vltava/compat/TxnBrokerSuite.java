package dev.vltava.compat;

import org.apache.kafka.clients.admin.Admin;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The shared fixture of the transaction suites: one broker with {@link Txn#BROKER_CONFIG} (few
 * {@code __transaction_state} partitions, a quick timeout scan) and an admin client on it, for a
 * whole test class.
 */
abstract class TxnBrokerSuite {
    protected static Broker broker;
    protected static Admin admin;

    @BeforeAll
    static void startBroker() {
        broker = Broker.start(Txn.BROKER_CONFIG);
        admin = Clients.admin(broker);
    }

    @AfterAll
    static void stopBroker() {
        if (admin != null) {
            admin.close();
        }
        if (broker != null) {
            broker.close();
        }
    }
}
