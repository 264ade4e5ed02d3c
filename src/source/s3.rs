//! AWS S3 and S3-compatible stores (Ceph, MinIO, moto) through aws-sdk-s3.
//!
//! Credentials come from the standard AWS chain of aws-config: environment variables, the
//! shared config and credentials files (`--profile`), SSO, web identity and instance
//! metadata. With `--endpoint` (or `AWS_ENDPOINT_URL`) requests use path-style addressing,
//! which S3-compatible stores expect. The SDK's own retries are off: `fetch` retries ranges
//! itself, from each range's start, with the operator's `--retries`.

use std::ops::Range;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::{
    ProvideCredentials, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};

use super::{BoxFuture, CloudOptions, GetRange, ObjectMeta, Source, Upload};
use crate::error::{Error, Result, Retry};

/// Multipart upload part size for `pack` (S3's minimum is 5 MiB).
const UPLOAD_PART: usize = 8 << 20;

/// A bucket, optionally below a prefix.
#[derive(Debug, Clone)]
pub struct S3Source {
    client: Client,
    bucket: String,
    /// Empty, or ending in `/`.
    prefix: String,
    endpoint: Option<String>,
}

impl S3Source {
    /// Loads the AWS configuration and builds a client.
    pub async fn connect(bucket: &str, prefix: &str, opts: &CloudOptions) -> Result<Self> {
        let mut timeouts = TimeoutConfig::builder().connect_timeout(Duration::from_secs(10));
        if let Some(t) = opts.read_timeout {
            timeouts = timeouts.read_timeout(t);
        }
        // The SDK's HTTPS client on rustls with ring (the system's roots), for every AWS
        // request: S3, STS, SSO, instance metadata.
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.build());
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty());
        if let Some(e) = &endpoint {
            loader = loader.endpoint_url(e);
        }
        let conf = loader.load().await;
        // Without credentials every request fails after the SDK's own lookups; say so once,
        // at once, before anything else is tried.
        let found = match conf.credentials_provider() {
            Some(p) => matches!(
                tokio::time::timeout(Duration::from_secs(15), p.provide_credentials()).await,
                Ok(Ok(_))
            ),
            None => false,
        };
        if !found {
            return Err(Error::NoCredentials {
                location: format!("s3://{bucket}"),
                hint: String::new(),
            });
        }
        let mut b = aws_sdk_s3::config::Builder::from(&conf)
            // S3-compatible stores often reject the newer default checksum headers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if conf.region().is_none() {
            b = b.region(Region::new("us-east-1"));
        }
        if endpoint.is_some() {
            b = b.force_path_style(true);
        }
        Ok(S3Source {
            client: Client::from_conf(b.build()),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint,
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// Maps an SDK error: transient for timeouts, connection failures and 5xx/429; with advice
/// for the ones an operator can fix.
fn sdk_error<E>(
    op: &'static str,
    object: &str,
    range: Option<Range<u64>>,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    // A certificate we do not trust is not a network hiccup: asking again cannot help.
    let untrusted = matches!(&e, SdkError::DispatchFailure(_))
        && root_cause(&e).to_ascii_lowercase().contains("certificate");
    let transient = match &e {
        SdkError::DispatchFailure(_) if untrusted => false,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => {
            matches!(status, Some(s) if s >= 500 || s == 429 || s == 408)
        }
        _ => false,
    };
    let code = e.code().map(str::to_string);
    let advice = match (status, code.as_deref()) {
        (Some(403), _) => {
            ". Access denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE/--profile) \
             and that they may read this bucket"
        }
        (_, Some("NoSuchBucket")) => ". The bucket does not exist: check --bucket and --region",
        (Some(404), _) => ". Not found: the object was deleted or renamed while we read it",
        (Some(301), _) => ". The bucket is in another region: pass --region",
        _ => "",
    };
    let mut msg = match (status, &code, &e) {
        (Some(s), Some(c), _) => format!("HTTP {s} {c}"),
        (Some(s), None, _) => format!("HTTP {s}"),
        (None, _, SdkError::DispatchFailure(d)) if d.is_timeout() => {
            "read timeout: nothing arrived within --read-timeout".to_string()
        }
        (None, _, SdkError::DispatchFailure(_)) if untrusted => format!(
            "the S3 endpoint's TLS certificate is not trusted: {}. A private CA: name it in \
             SSL_CERT_FILE",
            root_cause(&e)
        ),
        (None, _, SdkError::DispatchFailure(_)) => {
            format!("cannot reach the S3 endpoint: {}", root_cause(&e))
        }
        (None, _, SdkError::TimeoutError(_)) => {
            "read timeout: nothing arrived within --read-timeout".to_string()
        }
        _ => root_cause(&e),
    };
    if let Some(m) = e.message() {
        msg.push_str(": ");
        msg.push_str(m);
    }
    msg.push_str(advice);
    Error::storage(op, object, range, Retry::when(transient), msg)
}

/// The innermost error's message: what went wrong, without the SDK's layers of wrapping.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    if text.is_empty() {
        DisplayErrorContext(e).to_string()
    } else {
        text
    }
}

impl Source for S3Source {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn describe(&self) -> String {
        let mut s = format!("s3://{}/{}", self.bucket, self.prefix);
        if s.ends_with('/') {
            s.pop();
        }
        match &self.endpoint {
            Some(e) => format!("{s} at {e}"),
            None => s,
        }
    }

    fn list<'a>(&'a self, name_prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            let prefix = self.key(name_prefix);
            loop {
                let mut req = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&prefix);
                if let Some(t) = token.take() {
                    req = req.continuation_token(t);
                }
                let page = req
                    .send()
                    .await
                    .map_err(|e| sdk_error("listing", &self.describe(), None, e))?;
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    let Some(name) = key.strip_prefix(&self.prefix) else {
                        continue;
                    };
                    // Objects in "subdirectories" are not part of this location.
                    if name.contains('/') {
                        continue;
                    }
                    out.push(ObjectMeta {
                        name: name.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        etag: o.e_tag().map(str::to_string),
                        not_a_file: None,
                    });
                }
                match page.next_continuation_token() {
                    Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok(out)
        })
    }

    fn get_range<'a>(
        &'a self,
        name: &'a str,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<GetRange>> {
        Box::pin(async move {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.key(name))
                .range(format!("bytes={}-{}", range.start, range.end - 1))
                .send()
                .await
                .map_err(|e| sdk_error("reading", name, Some(range.clone()), e))?;
            let etag = out.e_tag().map(str::to_string);
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| {
                    Error::storage("reading", name, Some(range.clone()), Retry::Transient, e)
                })?
                .into_bytes();
            Ok(GetRange { bytes, etag })
        })
    }

    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn Upload>>> {
        Box::pin(async move {
            Ok(Box::new(S3Upload {
                client: self.client.clone(),
                bucket: self.bucket.clone(),
                key: self.key(name),
                buf: BytesMut::new(),
                upload_id: None,
                parts: Vec::new(),
                done: false,
            }) as Box<dyn Upload>)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.key(name))
                .send()
                .await
                .map_err(|e| sdk_error("deleting", name, None, e))?;
            Ok(())
        })
    }

    fn default_concurrency(&self) -> usize {
        16
    }

    fn default_chunk_size(&self) -> u64 {
        8 << 20
    }
}

/// A single PUT for small objects, a multipart upload for large ones.
#[derive(Debug)]
struct S3Upload {
    client: Client,
    bucket: String,
    key: String,
    buf: BytesMut,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    done: bool,
}

impl S3Upload {
    async fn upload_part(&mut self, data: Bytes) -> Result<()> {
        if self.upload_id.is_none() {
            let out = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .send()
                .await
                .map_err(|e| sdk_error("starting the upload of", &self.key, None, e))?;
            self.upload_id = out.upload_id().map(str::to_string);
        }
        let number = self.parts.len() as i32 + 1;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(self.upload_id.as_deref().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| sdk_error("uploading", &self.key, None, e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }
}

impl Upload for S3Upload {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.buf.extend_from_slice(&data);
            while self.buf.len() >= UPLOAD_PART {
                let part = self.buf.split_to(UPLOAD_PART).freeze();
                self.upload_part(part).await?;
            }
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let rest = std::mem::take(&mut self.buf).freeze();
            if self.upload_id.is_none() {
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .body(ByteStream::from(rest))
                    .send()
                    .await
                    .map_err(|e| sdk_error("uploading", &self.key, None, e))?;
            } else {
                if !rest.is_empty() {
                    self.upload_part(rest).await?;
                }
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(self.upload_id.as_deref().unwrap_or_default())
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(std::mem::take(&mut self.parts)))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| sdk_error("completing the upload of", &self.key, None, e))?;
            }
            self.done = true;
            Ok(())
        })
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        // An unfinished multipart upload costs storage until aborted.
        if let (false, Some(id)) = (self.done, self.upload_id.take()) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let req = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(id);
                rt.spawn(async move {
                    let _ = req.send().await;
                });
            }
        }
    }
}
