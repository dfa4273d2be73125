//! The fan-out figure: 1,000 no-op children launched from one parent's context and awaited by
//! it (`Context::wait_all`), against 1,000 plain launches awaited by the caller, on one runtime
//! in the same run. Both launch all at once (the launches share group commits) and then wait.

use std::future::IntoFuture;
use std::path::Path;
use std::time::Instant;

use futures::future::join_all;
use offstage::{Context, Runtime, Status, TaskError};
use serde_json::Value;

use crate::measure::percentile;

async fn noop(_ctx: Context, _args: Value) -> Result<(), TaskError> {
    Ok(())
}

/// Launches `n` no-op children and waits for them all; fails if one did not complete.
async fn fan(ctx: Context, n: usize) -> Result<usize, TaskError> {
    let launches = (0..n).map(|_| ctx.launch_json("noop", Value::Null).into_future());
    let children = join_all(launches)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let results = ctx.wait_all(&children).await?;
    if let Some(Err(error)) = results.iter().find(|result| result.is_err()) {
        return Err(error.clone());
    }
    Ok(results.len())
}

/// Launch → all done, in ms, for `children` children of one parent and for as many plain
/// launches: the median of `rounds` rounds of each, taken in turn.
pub async fn fanout(db: &Path, children: usize, rounds: usize) -> (f64, f64) {
    let rt = Runtime::builder()
        .sqlite(db)
        .task("noop", noop)
        .task("fan", fan)
        .max_concurrency(children * 2)
        .build()
        .await
        .unwrap();
    let (mut fanned, mut plain) = (Vec::new(), Vec::new());
    // One round of each first, unmeasured: the store and the runtime warm up.
    for round in 0..=rounds {
        let start = Instant::now();
        let parent = rt
            .launch_json("fan", serde_json::json!(children))
            .await
            .unwrap();
        let record = parent.wait().await.unwrap();
        assert_eq!(record.status, Status::Completed, "{:?}", record.error);
        let took = start.elapsed().as_secs_f64() * 1e3;
        if round > 0 {
            fanned.push(took);
        }

        let start = Instant::now();
        let launches = (0..children).map(|_| rt.launch_json("noop", Value::Null).into_future());
        let tasks: Vec<_> = join_all(launches)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for record in join_all(tasks.iter().map(|task| task.wait())).await {
            assert_eq!(record.unwrap().status, Status::Completed);
        }
        let took = start.elapsed().as_secs_f64() * 1e3;
        if round > 0 {
            plain.push(took);
        }
    }
    rt.shutdown().await.unwrap();
    (percentile(&mut fanned, 0.5), percentile(&mut plain, 0.5))
}
