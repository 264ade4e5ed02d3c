//! The `Source` conformance suite (object_store's habit): one function every backend runs —
//! the in-memory source, a local directory, S3 (moto) and Azure Blob (Azurite) — so that the
//! pipeline can rely on the same behaviour from each: listing by prefix (across S3's pages of
//! 1000), exact ranged reads, create, delete, and a rewrite that changes the ETag.

use std::sync::{Arc, Once};

use a9s_recover::source::memory::MemorySource;
use a9s_recover::source::{CloudOptions, LocalSource, Location, Source};
use bytes::Bytes;

use crate::support::servers::*;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn put(source: &dyn Source, name: &str, data: &[u8]) {
    let mut up = source.create(name).await.unwrap();
    // Two writes: an upload is a stream, not one buffer.
    let half = data.len() / 2;
    up.write(Bytes::copy_from_slice(&data[..half]))
        .await
        .unwrap();
    up.write(Bytes::copy_from_slice(&data[half..]))
        .await
        .unwrap();
    up.finish().await.unwrap();
}

/// The suite. `many`: how many objects to list in one go (more than a page where the
/// backend pages).
async fn conformance(source: Arc<dyn Source>, many: usize) {
    let s = &*source;
    put(s, "conf-a-1", b"hello, backup").await;
    put(s, "conf-a-2", &[7u8; 3000]).await;
    put(s, "conf-a-10", b"x").await;
    put(s, "conf-b-1", b"other").await;

    // Listing by prefix: exactly the objects below it, with their sizes.
    let mut a = s.list("conf-a-").await.unwrap();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    let names: Vec<(&str, u64)> = a.iter().map(|o| (o.name.as_str(), o.size)).collect();
    assert_eq!(
        names,
        [("conf-a-1", 13), ("conf-a-10", 1), ("conf-a-2", 3000)],
        "{}",
        s.describe()
    );
    assert!(s.list("conf-zzz").await.unwrap().is_empty());

    // Ranged reads: exact bytes, the first, the middle, the last.
    let r = s.get_range("conf-a-1", 0..5).await.unwrap();
    assert_eq!(&r.bytes[..], b"hello");
    let r = s.get_range("conf-a-1", 7..13).await.unwrap();
    assert_eq!(&r.bytes[..], b"backup");
    let r = s.get_range("conf-a-2", 2999..3000).await.unwrap();
    assert_eq!(&r.bytes[..], &[7u8]);
    let first_etag = s.get_range("conf-b-1", 0..5).await.unwrap().etag;

    // A missing object is an error that no retry can fix.
    let e = s.get_range("conf-missing", 0..1).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");

    // A rewrite changes the version marker the fetch compares (a backup being rewritten
    // while it is read must not be mixed from two versions).
    std::thread::sleep(std::time::Duration::from_millis(20));
    put(s, "conf-b-1", b"OTHER").await;
    let r = s.get_range("conf-b-1", 0..5).await.unwrap();
    assert_eq!(&r.bytes[..], b"OTHER");
    if first_etag.is_some() {
        assert_ne!(
            r.etag,
            first_etag,
            "{}: the ETag did not change",
            s.describe()
        );
    }
    let listed = s.list("conf-b-").await.unwrap();
    assert_eq!(listed[0].size, 5);

    // Delete.
    s.delete("conf-a-10").await.unwrap();
    assert_eq!(s.list("conf-a-").await.unwrap().len(), 2);

    // Many objects: all listed (S3 pages by 1000).
    for i in 0..many {
        put(s, &format!("conf-p-{i:05}"), b"p").await;
    }
    assert_eq!(
        s.list("conf-p-").await.unwrap().len(),
        many,
        "{}",
        s.describe()
    );
}

#[test]
fn the_in_memory_source_conforms() {
    block_on(conformance(Arc::new(MemorySource::new()), 1200));
}

#[test]
fn a_local_directory_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    block_on(conformance(
        Arc::new(LocalSource::new(tmp.path().to_path_buf())),
        1200,
    ));
}

/// The cloud backends read their credentials from the environment, as operators give them;
/// the suite's are fake ones for the local servers, set once for this test process.
fn cloud_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AZURE_STORAGE_KEY", AZ_KEY),
        ] {
            std::env::set_var(k, v);
        }
    });
}

#[test]
fn s3_conforms() {
    let Some(moto) = moto() else { return };
    cloud_env();
    s3_bucket(moto.port, "conf");
    let opts = CloudOptions {
        endpoint: Some(format!("http://127.0.0.1:{}", moto.port)),
        ..CloudOptions::default()
    };
    block_on(async {
        let source = Location::parse("s3://conf/some/prefix", None)
            .unwrap()
            .open(&opts)
            .await
            .unwrap();
        conformance(source, 1005).await;
    });
}

#[test]
fn azure_conforms() {
    let Some(azurite) = azurite() else { return };
    cloud_env();
    let ep = az_endpoint(azurite.port);
    az_setup(&["container", &ep, "conf"]);
    let opts = CloudOptions {
        endpoint: Some(ep),
        account: Some(AZ_ACCOUNT.into()),
        ..CloudOptions::default()
    };
    block_on(async {
        let source = Location::parse("az://conf/some/prefix", None)
            .unwrap()
            .open(&opts)
            .await
            .unwrap();
        // Azure pages by 5000: listing that many is left to the S3 case's 1005.
        conformance(source, 50).await;
    });
}
