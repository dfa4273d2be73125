//! The limiter figures: one limiter (a token bucket) acquired as fast as it lets them by two
//! nodes on one store (two runtimes, each with its own store handle, as two processes would
//! have), for a while; the acquisitions per second, in all and per node, and how close they
//! come to the configured rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offstage::store::Store;
use offstage::{Limit, Runtime};

/// What two nodes achieved.
pub struct Achieved {
    /// Acquisitions per second, both nodes together.
    pub per_s: f64,
    /// `per_s` over the configured rate (the initial burst included in the count).
    pub ratio: f64,
    /// Acquisitions per second on each node.
    pub per_node: [f64; 2],
}

/// `acquirers` callers on each of two runtimes (one on each of `stores`) acquire limiter
/// `bench` (`rate` a second, burst `burst`) in a loop for `run`.
pub async fn two_nodes(
    stores: [Arc<dyn Store>; 2],
    rate: f64,
    burst: u32,
    acquirers: usize,
    run: Duration,
) -> Achieved {
    let mut runtimes = Vec::new();
    for store in stores {
        runtimes.push(
            Runtime::builder()
                .store(store)
                .limiter("bench", Limit::per_second(rate).burst(burst))
                .build()
                .await
                .unwrap(),
        );
    }
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + run;
    let mut loops = Vec::new();
    for (rt, count) in runtimes.iter().zip(&counts) {
        for _ in 0..acquirers {
            let limiter = rt.limiter("bench").unwrap();
            let count = Arc::clone(count);
            loops.push(tokio::spawn(async move {
                while let Ok(Some(_permit)) = tokio::time::timeout_at(deadline, limiter.acquire())
                    .await
                    .map(|acquired| acquired.ok())
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for one in loops {
        one.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    for rt in runtimes {
        rt.shutdown().await.unwrap();
    }
    let taken = counts.map(|c| c.load(Ordering::Relaxed) as f64);
    let per_s = (taken[0] + taken[1]) / secs;
    Achieved {
        per_s,
        ratio: per_s / rate,
        per_node: taken.map(|t| t / secs),
    }
}
