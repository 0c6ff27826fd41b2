package dev.vltava.compat;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.SecurityDisabledException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** ACL calls answered as a Kafka broker without an authorizer answers them: SecurityDisabledException. */
class AdminAclTest {
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

    private static final AclBinding BINDING = new AclBinding(
            new ResourcePattern(ResourceType.TOPIC, "t", PatternType.LITERAL),
            new AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW));

    @Test
    void describeAclsIsSecurityDisabled() {
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> admin.describeAcls(AclBindingFilter.ANY).values().get());
        assertInstanceOf(SecurityDisabledException.class, e.getCause());
    }

    @Test
    void createAclsIsSecurityDisabled() {
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> admin.createAcls(List.of(BINDING)).all().get());
        assertInstanceOf(SecurityDisabledException.class, e.getCause());
    }

    @Test
    void deleteAclsIsSecurityDisabled() {
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> admin.deleteAcls(List.of(BINDING.toFilter())).all().get());
        assertInstanceOf(SecurityDisabledException.class, e.getCause());
    }
}
