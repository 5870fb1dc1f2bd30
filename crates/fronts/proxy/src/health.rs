//! Active health checks: for every route with a `health_check`, a GET of its path on each
//! backend every `interval_ms`; a 2xx within `timeout_ms` passes. The pool turns results
//! into up/down with its thresholds.

use crate::pipeline::Pipeline;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_edge::Edge;

pub async fn run(edge: Edge, pipeline: Arc<Pipeline>) {
    let mut last: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let table = edge.table();
        for route in table.routes() {
            let Some(check) = route.spec.health_check.clone() else { continue };
            let due = last
                .get(&route.spec.name)
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(check.interval_ms));
            if !due {
                continue;
            }
            last.insert(route.spec.name.clone(), Instant::now());
            for (index, backend) in route.pool.backends.iter().enumerate() {
                let (route, pipeline, check) = (route.clone(), pipeline.clone(), check.clone());
                let address = backend.address.clone();
                tokio::spawn(async move {
                    let reach = crate::pipeline::Reach {
                        connect_timeout: Duration::from_millis(check.timeout_ms),
                        http2: route.spec.upstream_http2,
                        tls: route.spec.upstream_tls.as_ref(),
                    };
                    let ok = pipeline.probe(&address, &check.path, reach).await;
                    route.pool.record_check(index, ok, (check.unhealthy_threshold, check.healthy_threshold));
                });
            }
        }
    }
}
