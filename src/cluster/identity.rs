//! Who may talk on the metadata port: the hello frame each connection starts with (cluster id,
//! or a bootstrap token derived from the voter map before the id is known, and the node id), and
//! the checks that refuse strangers: another cluster, an unknown node id, this node's own id, a
//! known id connecting from another address.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::image::MetadataImage;
use super::types::{NodeId, StoredMembership};
use super::wire::literal_ip;

/// A connection's first frame, both ways.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Hello {
    pub(super) cluster: ClusterTag,
    pub(super) node_id: NodeId,
    /// A broker-only node, which may connect before it is a member (to ask to join).
    pub(super) learner: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum ClusterTag {
    /// The cluster id, once this node knows it.
    Id(String),
    /// Before that: a digest of the configured voter map, the same on every fresh member.
    Bootstrap(String),
}

/// The server's answer to a hello; after `Refused` it closes the connection.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum HelloReply {
    Welcome(Hello),
    Refused(String),
}

/// This node as it introduces itself and judges peers.
pub(super) struct Identity {
    pub(super) node_id: NodeId,
    pub(super) learner: bool,
    configured: Option<String>,
    /// Read from `raft/cluster_id` at start.
    stored: Option<String>,
    images: watch::Receiver<Arc<MetadataImage>>,
    token: String,
    voters: BTreeMap<NodeId, String>,
    pub(super) bind_ip: Option<IpAddr>,
}

impl Identity {
    pub(super) fn new(
        node_id: NodeId,
        learner: bool,
        configured: Option<String>,
        stored: Option<String>,
        images: watch::Receiver<Arc<MetadataImage>>,
        voters: BTreeMap<NodeId, String>,
        bind_ip: Option<IpAddr>,
    ) -> Identity {
        let canonical: Vec<String> = voters.iter().map(|(id, a)| format!("{id}@{a}")).collect();
        let token = format!("{:08x}", crc32c::crc32c(canonical.join(",").as_bytes()));
        Identity {
            node_id,
            learner,
            configured,
            stored,
            images,
            token,
            voters,
            bind_ip,
        }
    }

    /// The cluster id if known: configured, applied, or stored by an earlier run.
    fn cluster_id(&self) -> Option<String> {
        if let Some(c) = &self.configured {
            return Some(c.clone());
        }
        let applied = self.images.borrow().cluster_id.clone();
        if !applied.is_empty() {
            return Some(applied);
        }
        self.stored.clone()
    }

    pub(super) fn hello(&self) -> Hello {
        let cluster = match self.cluster_id() {
            Some(id) => ClusterTag::Id(id),
            None => ClusterTag::Bootstrap(self.token.clone()),
        };
        Hello {
            cluster,
            node_id: self.node_id,
            learner: self.learner,
        }
    }

    /// Whether `theirs` belongs to this node's cluster. A peer that does not know the id yet
    /// must have been configured with the same voters; while this node does not know it, a
    /// peer's id is taken on trust (it is learned from the leader's log anyway).
    pub(super) fn check_cluster(&self, theirs: &Hello) -> Result<(), String> {
        match (&theirs.cluster, self.cluster_id()) {
            (ClusterTag::Id(t), Some(ours)) if *t != ours => Err(format!(
                "node {} is in cluster {t:?}, this node in {ours:?}",
                theirs.node_id
            )),
            (ClusterTag::Bootstrap(t), _) if *t != self.token => Err(format!(
                "node {} was configured with other voters (bootstrap token {t}, ours {})",
                theirs.node_id, self.token
            )),
            _ => Ok(()),
        }
    }

    /// The server's checks of a connecting peer, from `peer_ip`, against the configured voters
    /// and the current membership.
    pub(super) fn check_peer(
        &self,
        theirs: &Hello,
        peer_ip: IpAddr,
        membership: &StoredMembership,
    ) -> Result<(), String> {
        self.check_cluster(theirs)?;
        let id = theirs.node_id;
        if id == self.node_id {
            return Err(format!(
                "node id {id} is this node's own id (a duplicate node id)"
            ));
        }
        let addr = membership
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .or_else(|| self.voters.get(&id).cloned());
        match addr {
            Some(addr) => match literal_ip(&addr) {
                Some(ip) if !ip.is_unspecified() && !same_ip(ip, peer_ip) => Err(format!(
                    "node {id} is at {addr} but connected from {peer_ip} (a duplicate node id?)"
                )),
                _ => Ok(()),
            },
            None if theirs.learner => Ok(()),
            None => Err(format!(
                "unknown node id {id}: neither a voter nor a member"
            )),
        }
    }
}

/// The same address, also across the IPv4-mapped IPv6 form a dual-stack listener reports.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    canon(a) == canon(b)
}
