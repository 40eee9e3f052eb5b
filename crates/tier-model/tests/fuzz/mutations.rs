//! Mutated projects: the sample app and a project of regions, cut, duplicated, truncated
//! and sprinkled with TOML and JSON punctuation and bytes that are not UTF-8.

use proptest::prelude::*;
use proptest::sample::{Index, select};

use crate::Files;

// Mutations of valid projects.

const SAMPLE: &[(&str, &str)] = &[
    (
        "tier.toml",
        include_str!("../../../../examples/sample-app/tier.toml"),
    ),
    (
        "envs/prod.toml",
        include_str!("../../../../examples/sample-app/envs/prod.toml"),
    ),
    (
        "envs/stage.toml",
        include_str!("../../../../examples/sample-app/envs/stage.toml"),
    ),
    (
        "config/backend/base.json",
        include_str!("../../../../examples/sample-app/config/backend/base.json"),
    ),
    (
        "config/backend/dev.json",
        include_str!("../../../../examples/sample-app/config/backend/dev.json"),
    ),
    (
        "config/backend/stage.json",
        include_str!("../../../../examples/sample-app/config/backend/stage.json"),
    ),
    (
        "config/backend/prod.json",
        include_str!("../../../../examples/sample-app/config/backend/prod.json"),
    ),
    (
        "config/frontend/base.json",
        include_str!("../../../../examples/sample-app/config/frontend/base.json"),
    ),
];

const REGIONS: &[(&str, &str)] = &[
    (
        "tier.toml",
        "[project]\nname = \"regions\"\n\n[environments.dev]\nruntime = \"local\"\n\n[environments.prod]\nabstract = true\nruntime = \"kubernetes\"\nprotected = true\nkube = { context = \"admin\", namespace = \"regions-prod\" }\n\n[environments.prod-ie]\nextends = \"prod\"\npromote_from = \"dev\"\nregion = \"eu-west-1\"\nkube = { context = \"admin\", namespace = \"regions-ie\" }\n\n[environments.prod-us]\nextends = \"prod\"\nregion = \"us-east-2\"\nkube = { context = \"admin\", namespace = \"regions-us\" }\n\n[services.api]\ncommand = [\"api\"]\nimage = \"api:1\"\nreplicas = 1\nmemory = \"64Mi\"\nconfig = \"config/api\"\nsecrets = { TOKEN = { env = \"TOKEN\" } }\nenv = { LOG = \"info\" }\n\n[services.web]\ncommand = [\"web\"]\nimage = \"web:1\"\ndepends_on = [\"api\"]\nexpose = 8080\nhealth = { http = \"/\", interval = \"5s\" }\nrollout = { max_surge = 2, deadline = \"2m\" }\n\n[flags.new-ui]\ndefault = false\n",
    ),
    (
        "envs/prod.toml",
        "[services.api]\nreplicas = 3\nmemory = \"256Mi\"\n\n[flags.new-ui]\ndefault = true\n",
    ),
    (
        "envs/prod-ie.toml",
        "[services.api]\nreplicas = 5\n\n[project]\non_failure = \"halt\"\n",
    ),
    (
        "config/api/base.json",
        "{\n  \"log\": \"info\",\n  \"limits\": { \"rps\": 10, \"burst\": 20 },\n  \"hosts\": [\"a\", \"b\"],\n  \"debug\": true\n}\n",
    ),
    (
        "config/api/prod.json",
        "{ \"log\": \"warn\", \"hosts\": [\"p\"], \"debug\": null, \"limits\": { \"rps\": 100 } }\n",
    ),
    ("config/api/prod-ie.json", "{ \"region\": \"ie\" }\n"),
];

/// Bytes that matter to TOML and JSON, and some that are not UTF-8.
const INSERTS: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[",
    b"=",
    b"\"",
    b"'",
    b"\n",
    b"{",
    b"}",
    b",",
    b".",
    b"#",
    b"\\",
    b"-",
    b"0",
    b"9",
    b"e",
    b" ",
    b"\r",
    b"\t",
    b"\0",
    b"null",
    b"true",
    "é".as_bytes(),
    "\u{feff}".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\"\"\"",
    b"'''",
    b"[services.backend]\n",
    b"[environments.dev]\n",
    b"extends = \"prod\"\n",
    b"depends_on = [\"frontend\"]\n",
    b"promote_from = \"prod\"\n",
];

#[derive(Clone, Debug)]
enum Mutation {
    /// Remove the bytes between two points.
    Delete(Index, Index),
    /// Copy the bytes between two points to a third.
    Duplicate(Index, Index, Index),
    /// Insert a token at a point.
    Insert(Index, &'static [u8]),
    /// Replace one byte.
    Replace(Index, u8),
    /// Keep only the bytes before a point.
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Delete(a, b)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(a, b, c)| Mutation::Duplicate(a, b, c)),
        5 => (any::<Index>(), select(INSERTS)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Replace(at, byte)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    // Points range over 0..=len, so an empty file can still grow.
    let point = |index: &Index, len: usize| index.index(len + 1);
    let len = bytes.len();
    match mutation {
        Mutation::Delete(a, b) => {
            let (start, end) = ordered(point(a, len), point(b, len));
            // Short cuts are the interesting ones: a quote, a bracket, a key's tail.
            bytes.drain(start..end.min(start + 16));
        }
        Mutation::Duplicate(a, b, at) => {
            let (start, end) = ordered(point(a, len), point(b, len));
            let copy: Vec<u8> = bytes[start..end.min(start + 64)].to_vec();
            let at = point(at, len);
            bytes.splice(at..at, copy);
        }
        Mutation::Insert(at, token) => {
            let at = point(at, len);
            bytes.splice(at..at, token.iter().copied());
        }
        Mutation::Replace(at, byte) => {
            if len > 0 {
                bytes[at.index(len)] = *byte;
            }
        }
        Mutation::Truncate(at) => bytes.truncate(point(at, len)),
    }
}

fn ordered(a: usize, b: usize) -> (usize, usize) {
    if a <= b { (a, b) } else { (b, a) }
}

/// The sample app or the regions project, with a few mutations in one or two of its files.
pub(crate) fn mutated_project() -> impl Strategy<Value = Files> {
    let base = select(&[SAMPLE, REGIONS][..]);
    let edits = prop::collection::vec(
        (any::<Index>(), prop::collection::vec(mutation(), 1..5)),
        1..3,
    );
    (base, edits).prop_map(|(base, edits)| {
        let mut files: Vec<(String, Vec<u8>)> = base
            .iter()
            .map(|(path, text)| ((*path).to_owned(), text.as_bytes().to_vec()))
            .collect();
        for (file, mutations) in edits {
            // tier.toml is where most of a project is, so it is mutated half the time.
            let target = if file.index(2) == 0 {
                0
            } else {
                file.index(files.len())
            };
            for mutation in &mutations {
                apply(&mut files[target].1, mutation);
            }
        }
        Files(files)
    })
}
