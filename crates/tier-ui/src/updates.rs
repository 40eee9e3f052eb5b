//! The collector's loop: a thread of its own (the runtimes' clients it calls block), which
//! reads the matrix every [`REFRESH`] and, when it changed, publishes it for new pages and
//! sends what changed to the pages that follow `/api/events`.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::REFRESH;
use crate::matrix::{Collector, Matrix};
use crate::page;

pub(crate) fn spawn(
    mut collector: Collector,
    publish: watch::Sender<Arc<Matrix>>,
    updates: broadcast::Sender<Arc<str>>,
    shutdown: CancellationToken,
) {
    // The loop stops when this sender goes, which the task below drops on shutdown.
    let (stop, stopped) = mpsc::channel::<()>();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        drop(stop);
    });
    let spawned = std::thread::Builder::new()
        .name("tier-ui-matrix".to_owned())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH) {
                let next = collector.collect();
                let previous = publish.borrow().clone();
                // A matrix like the last is not published, so what was rendered from the last
                // is served on.
                if let Some(change) = changes(&previous, &next) {
                    publish.send_replace(Arc::new(next));
                    // Nobody listening is not a failure.
                    let _ = updates.send(change.into());
                }
            }
        });
    // Without its collector the dashboard still serves the first matrix.
    if let Err(error) = spawned {
        eprintln!("warning: the dashboard will not update: {error}");
    }
}

/// The cells and column headers that differ, as the JSON a page applies; `reload` when the
/// rows or columns themselves changed. `None` when nothing did.
pub(crate) fn changes(previous: &Matrix, next: &Matrix) -> Option<String> {
    let same_shape = previous.services == next.services
        && previous.environments.len() == next.environments.len()
        && previous
            .environments
            .iter()
            .zip(&next.environments)
            .all(|(old, new)| old.name == new.name);
    if !same_shape {
        return Some(json!({ "reload": true }).to_string());
    }
    let mut columns = Map::new();
    let mut cells = Map::new();
    for (old, new) in previous.environments.iter().zip(&next.environments) {
        if old != new {
            columns.insert(new.name.clone(), json!(page::column_html(new)));
        }
        let (Some(old_row), Some(new_row)) =
            (previous.cells.get(&old.name), next.cells.get(&new.name))
        else {
            continue;
        };
        for (service, cell) in new_row {
            if old_row.get(service) != Some(cell) {
                cells.insert(
                    page::cell_id(&new.name, service),
                    json!({
                        "class": page::cell_class(cell),
                        "title": page::cell_title(new, cell),
                        "html": page::cell_html(cell),
                        "health": cell.health,
                    }),
                );
            }
        }
    }
    if columns.is_empty() && cells.is_empty() {
        return None;
    }
    Some(json!({ "columns": Value::Object(columns), "cells": Value::Object(cells) }).to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::matrix::{Cell, Column, Health};

    fn matrix(health: Health, services: &[&str]) -> Matrix {
        let cell = Cell {
            health,
            version: Some("1.0".to_owned()),
            ready: 1,
            desired: 1,
            restarts: 0,
            reason: None,
            drift: None,
            changed: None,
        };
        let row: BTreeMap<String, Cell> = services
            .iter()
            .map(|service| ((*service).to_owned(), cell.clone()))
            .collect();
        Matrix {
            project: "shop".to_owned(),
            environments: vec![Column {
                name: "dev".to_owned(),
                runtime: tier_model::environment::Runtime::Local,
                extends: None,
                group: "dev".to_owned(),
                protected: false,
                running: true,
                deployed: None,
                problem: None,
                config_revision: None,
            }],
            services: services
                .iter()
                .map(|service| (*service).to_owned())
                .collect(),
            cells: BTreeMap::from([("dev".to_owned(), row)]),
        }
    }

    #[test]
    fn only_what_changed_is_sent_and_a_new_row_reloads_the_page() {
        let running = matrix(Health::Running, &["api", "web"]);
        assert_eq!(changes(&running, &running), None);
        let mut failing = running.clone();
        if let Some(cell) = failing
            .cells
            .get_mut("dev")
            .and_then(|row| row.get_mut("web"))
        {
            cell.health = Health::Failing;
        }
        let sent: serde_json::Value =
            serde_json::from_str(&changes(&running, &failing).unwrap_or_default())
                .unwrap_or_default();
        let cells = sent["cells"].as_object().cloned().unwrap_or_default();
        assert_eq!(cells.keys().collect::<Vec<_>>(), ["dev.web"]);
        assert_eq!(sent["cells"]["dev.web"]["health"], "failing");
        assert_eq!(sent["columns"], serde_json::json!({}));
        let grown = matrix(Health::Running, &["api", "web", "worker"]);
        assert_eq!(
            changes(&running, &grown),
            Some(r#"{"reload":true}"#.to_owned())
        );
    }
}
