//! Graceful-shutdown signal shared by the accept loop and every connection (as in mini-redis).

use tokio::sync::broadcast;

/// Listens for the broker-wide shutdown notice; `recv` returns at once after the first notice.
#[derive(Debug)]
pub struct Shutdown {
    notified: bool,
    rx: broadcast::Receiver<()>,
}

impl Shutdown {
    pub fn new(rx: broadcast::Receiver<()>) -> Shutdown {
        Shutdown {
            notified: false,
            rx,
        }
    }

    pub async fn recv(&mut self) {
        if self.notified {
            return;
        }
        // A closed or lagged channel means the same thing here: shut down.
        let _ = self.rx.recv().await;
        self.notified = true;
    }
}
