//! The fake's Deployment controller, in fast motion: the status a Deployment reports after so
//! many reads of its current generation.

use serde_json::{Value, json};

use super::Stored;

/// The status the fake controller reports after `reads` reads of the current generation.
pub(super) fn deployment_status(stored: &Stored) -> Value {
    let object = &stored.object;
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let desired = object["spec"]["replicas"].as_u64().unwrap_or(1);
    let failing = object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|container| container["image"].as_str())
        .any(|image| image_tag(image).contains("fail"));
    let holding = object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|container| container["image"].as_str())
        .any(|image| image_tag(image).contains("hold"));
    let set = format!("{name}-{generation}");
    let reads = if holding {
        stored.reads.min(2)
    } else {
        stored.reads
    };
    match reads {
        0 | 1 => json!({
            "observedGeneration": generation - 1,
            "replicas": desired,
        }),
        2 => json!({
            "observedGeneration": generation,
            "replicas": desired,
            "updatedReplicas": desired.min(1),
            "readyReplicas": 0,
            "availableReplicas": 0,
            "conditions": [{
                "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                "message": format!("ReplicaSet \"{set}\" is progressing."),
            }],
        }),
        _ if failing => json!({
            "observedGeneration": generation,
            "replicas": desired,
            "updatedReplicas": desired.min(1),
            "readyReplicas": 0,
            "availableReplicas": 0,
            "unavailableReplicas": desired,
            "conditions": [{
                "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": format!("ReplicaSet \"{set}\" has timed out progressing."),
            }],
        }),
        _ => {
            let ready = stored.ready.map_or(desired, u64::from).min(desired);
            json!({
                "observedGeneration": generation,
                "replicas": desired,
                "updatedReplicas": desired,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "conditions": [
                    {"type": "Available", "status": if ready == desired { "True" } else { "False" },
                     "reason": if ready == desired { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                     "message": format!("ReplicaSet \"{set}\" has successfully progressed.")},
                ],
            })
        }
    }
}

/// The tag of an image reference (`name:tag`, after any registry port), or empty.
fn image_tag(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, tag)| tag).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_ignore_registry_ports() {
        assert_eq!(image_tag("app:0.1-fail"), "0.1-fail");
        assert_eq!(image_tag("registry:5000/app"), "");
        assert_eq!(image_tag("registry:5000/team/app:2"), "2");
    }
}
