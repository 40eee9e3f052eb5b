//! `tier logs` for a kubernetes environment: the logs of its pods through the API, merged by
//! time and prefixed per pod, as the local runtime prints its replicas'.

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use tier_model::Environment;

use crate::cluster::{Cluster, ClusterError, environment_selector};
use crate::render::NAME_LABEL;

/// One line of one pod's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodLine {
    pub pod: String,
    /// The API server's RFC 3339 time of the line (empty when it gave none).
    pub time: String,
    pub text: String,
}

impl Cluster {
    /// The names of the environment's pods (of one service, or all), sorted.
    pub async fn pods(
        &self,
        environment: &Environment,
        namespace: &str,
        service: Option<&str>,
    ) -> Result<Vec<String>, ClusterError> {
        let mut selector = environment_selector(environment);
        if let Some(service) = service {
            selector.push_str(&format!(",{NAME_LABEL}={service}"));
        }
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let listed = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| ClusterError::Api {
                action: format!("list the pods of {}", environment.name),
                source,
            })?;
        let mut names: Vec<String> = listed
            .items
            .into_iter()
            .filter_map(|pod| pod.metadata.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// What the pods logged so far, merged by time.
    pub async fn log_lines(
        &self,
        namespace: &str,
        pods: &[String],
    ) -> Result<Vec<PodLine>, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let params = LogParams {
            timestamps: true,
            ..LogParams::default()
        };
        let mut lines = Vec::new();
        for pod in pods {
            let text = api
                .logs(pod, &params)
                .await
                .map_err(|source| ClusterError::Api {
                    action: format!("read the log of pod {pod}"),
                    source,
                })?;
            lines.extend(text.lines().map(|line| split(pod, line)));
        }
        // Stable: lines of one pod keep their order when their times are equal.
        lines.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(lines)
    }

    /// Follows the pods' logs from now, calling `line` for each new line as it comes, until
    /// every stream ends (its container stopped) or the process is interrupted.
    pub async fn follow_logs(
        &self,
        namespace: &str,
        pods: &[String],
        line: &(dyn Fn(PodLine) + Sync),
    ) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let params = LogParams {
            follow: true,
            timestamps: true,
            tail_lines: Some(0),
            ..LogParams::default()
        };
        let mut streams = Vec::new();
        for pod in pods {
            let stream =
                api.log_stream(pod, &params)
                    .await
                    .map_err(|source| ClusterError::Api {
                        action: format!("follow the log of pod {pod}"),
                        source,
                    })?;
            let pod = pod.clone();
            streams.push(stream.lines().map(move |text| (pod.clone(), text)).boxed());
        }
        let mut merged = futures_util::stream::select_all(streams);
        while let Some((pod, text)) = merged.next().await {
            match text {
                Ok(text) => line(split(&pod, &text)),
                // A stream that breaks ends that pod's lines; the others go on.
                Err(_) => continue,
            }
        }
        Ok(())
    }
}

/// `2026-12-03T15:04:05.123456789Z text` into its time and its text.
fn split(pod: &str, line: &str) -> PodLine {
    let (time, text) = match line.split_once(' ') {
        Some((time, text)) if time.ends_with('Z') && time.contains('T') => (time, text),
        _ => ("", line),
    };
    PodLine {
        pod: pod.to_owned(),
        time: time.to_owned(),
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_split_off_only_when_it_is_one() {
        let line = split(
            "api-1-0",
            "2026-12-03T15:04:05.000000001Z listening on :8080",
        );
        assert_eq!(line.time, "2026-12-03T15:04:05.000000001Z");
        assert_eq!(line.text, "listening on :8080");
        let plain = split("api-1-0", "no time here");
        assert_eq!(
            (plain.time.as_str(), plain.text.as_str()),
            ("", "no time here")
        );
    }
}
