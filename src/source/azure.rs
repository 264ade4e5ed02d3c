//! Azure Blob Storage through object_store's `azure` backend.
//!
//! Why not `azure_storage_blobs`: it moved to a legacy branch upstream with no plans to be
//! updated; object_store (Apache Arrow) is maintained and speaks account keys, SAS tokens,
//! bearer tokens and Azurite.
//!
//! Credentials, first match wins: `AZURE_STORAGE_CONNECTION_STRING` (as the az CLI uses it:
//! `AccountName`, `AccountKey`, `SharedAccessSignature`, `BlobEndpoint`, ...), then the
//! account from `--account` / `AZURE_STORAGE_ACCOUNT` with `AZURE_STORAGE_KEY` (account key)
//! or `AZURE_STORAGE_SAS_TOKEN`. `--endpoint` overrides the blob endpoint (Azurite, sovereign
//! clouds); for Azurite it is `http://HOST:PORT/ACCOUNT`.
//! object_store's own retries are off: `fetch` retries ranges with `--retries`.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, MultipartUpload, ObjectStore, PutPayload, RetryConfig,
};

use super::{AzureAuth, BoxFuture, CloudOptions, GetRange, ObjectMeta, Source, Upload};
use crate::error::{Error, Result, Retry};

/// A container, optionally below a prefix.
#[derive(Debug, Clone)]
pub struct AzureSource {
    store: Arc<MicrosoftAzure>,
    container: String,
    account: String,
    /// Empty, or ending in `/`.
    prefix: String,
}

/// The fields of an Azure storage connection string that matter here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub account_name: Option<String>,
    pub account_key: Option<String>,
    pub sas: Option<String>,
    pub blob_endpoint: Option<String>,
}

impl ConnectionString {
    /// Parses `Key=Value;Key=Value` (values may contain `=`, as keys in base64 do).
    pub fn parse(s: &str) -> Result<Self> {
        let mut c = ConnectionString::default();
        let mut protocol = "https".to_string();
        let mut suffix = "core.windows.net".to_string();
        let mut dev = false;
        for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                Error::Config(
                    "AZURE_STORAGE_CONNECTION_STRING is not a list of Key=Value pairs separated by ;"
                        .into(),
                )
            })?;
            match k.to_ascii_lowercase().as_str() {
                "accountname" => c.account_name = Some(v.to_string()),
                "accountkey" => c.account_key = Some(v.to_string()),
                "sharedaccesssignature" => c.sas = Some(v.trim_start_matches('?').to_string()),
                "blobendpoint" => c.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
                "defaultendpointsprotocol" => protocol = v.to_string(),
                "endpointsuffix" => suffix = v.to_string(),
                "usedevelopmentstorage" => dev = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        if dev {
            c.account_name
                .get_or_insert_with(|| "devstoreaccount1".into());
            c.account_key.get_or_insert_with(|| AZURITE_KEY.into());
            c.blob_endpoint
                .get_or_insert_with(|| "http://127.0.0.1:10000/devstoreaccount1".into());
        }
        if c.blob_endpoint.is_none() {
            if let Some(a) = &c.account_name {
                c.blob_endpoint = Some(format!("{protocol}://{a}.blob.{suffix}"));
            }
        }
        Ok(c)
    }
}

/// Azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The sign-in to use: the one asked for, or in `auto` the first whose variables are set.
fn choose_auth(asked: AzureAuth, have_key: bool) -> Result<AzureAuth> {
    if asked != AzureAuth::Auto {
        return Ok(asked);
    }
    let login = env("AZURE_STORAGE_AUTH_MODE").is_some_and(|m| m.eq_ignore_ascii_case("login"));
    // As the az CLI reads it: `login` means Entra ID credentials, not keys.
    if have_key && !login {
        return Ok(AzureAuth::Key);
    }
    let id = env("AZURE_CLIENT_ID").is_some() && env("AZURE_TENANT_ID").is_some();
    Ok(if id && env("AZURE_CLIENT_SECRET").is_some() {
        AzureAuth::ServicePrincipal
    } else if id && env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        AzureAuth::WorkloadIdentity
    } else if login {
        AzureAuth::Cli
    } else {
        AzureAuth::Key
    })
}

impl AzureSource {
    /// Builds a client from the options and the environment.
    pub fn connect(container: &str, prefix: &str, opts: &CloudOptions) -> Result<Self> {
        let conn = match env("AZURE_STORAGE_CONNECTION_STRING") {
            Some(s) => ConnectionString::parse(&s)?,
            None => ConnectionString::default(),
        };
        let account = opts
            .account
            .clone()
            .or(conn.account_name.clone())
            .or_else(|| env("AZURE_STORAGE_ACCOUNT"))
            .ok_or_else(|| {
                Error::Config(
                    "Azure needs a storage account: --account NAME, AZURE_STORAGE_ACCOUNT, or \
                     AZURE_STORAGE_CONNECTION_STRING"
                        .into(),
                )
            })?;
        let endpoint = opts.endpoint.clone().or(conn.blob_endpoint.clone());
        let mut client =
            ClientOptions::new().with_connect_timeout(std::time::Duration::from_secs(10));
        if let Some(t) = opts.read_timeout {
            client = client.with_timeout(t);
        }
        if endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
        {
            client = client.with_allow_http(true);
        }
        // A private CA (a proxy's, a self-signed Azurite's): the OpenSSL convention.
        if let Some(path) = env("SSL_CERT_FILE") {
            let pem = std::fs::read(&path)
                .map_err(|e| Error::Config(format!("SSL_CERT_FILE {path}: {e}")))?;
            let certs = object_store::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!(
                    "SSL_CERT_FILE {path} holds no PEM certificate: {e}"
                ))
            })?;
            for c in certs {
                client = client.with_root_certificate(c);
            }
        }
        let mut b = MicrosoftAzureBuilder::new()
            .with_account(&account)
            .with_container_name(container)
            .with_client_options(client)
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            });
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e.clone());
        }
        let key = conn
            .account_key
            .clone()
            .or_else(|| env("AZURE_STORAGE_KEY"));
        let sas = conn.sas.clone().or_else(|| env("AZURE_STORAGE_SAS_TOKEN"));
        let auth = choose_auth(opts.azure_auth, key.is_some() || sas.is_some())?;
        // Microsoft Entra ID's token endpoint (sovereign clouds, tests): the SDKs' variable.
        if let Some(host) = env("AZURE_AUTHORITY_HOST") {
            b = b.with_authority_host(host.trim_end_matches('/'));
        }
        let need = |name: &str, what: &str| {
            env(name).ok_or_else(|| {
                Error::Config(format!(
                    "Azure sign-in with {what} needs {name} (also AZURE_CLIENT_ID and AZURE_TENANT_ID)"
                ))
            })
        };
        match auth {
            AzureAuth::Key | AzureAuth::Auto => match (key, sas) {
                (Some(k), _) => b = b.with_access_key(k),
                (None, Some(s)) => {
                    b = b.with_config(AzureConfigKey::SasKey, s.trim_start_matches('?'));
                }
                (None, None) => {
                    return Err(Error::Config(
                        "Azure needs credentials: AZURE_STORAGE_KEY (account key), AZURE_STORAGE_SAS_TOKEN, \
                         AZURE_STORAGE_CONNECTION_STRING, or a sign-in with --azure-auth \
                         (service-principal, managed-identity, workload-identity, cli)"
                            .into(),
                    ))
                }
            },
            AzureAuth::ServicePrincipal => {
                b = b
                    .with_client_id(need("AZURE_CLIENT_ID", "a service principal")?)
                    .with_client_secret(need("AZURE_CLIENT_SECRET", "a service principal")?)
                    .with_tenant_id(need("AZURE_TENANT_ID", "a service principal")?);
            }
            AzureAuth::WorkloadIdentity => {
                b = b
                    .with_client_id(need("AZURE_CLIENT_ID", "a workload identity")?)
                    .with_tenant_id(need("AZURE_TENANT_ID", "a workload identity")?)
                    .with_federated_token_file(need(
                        "AZURE_FEDERATED_TOKEN_FILE",
                        "a workload identity",
                    )?);
            }
            AzureAuth::ManagedIdentity => {
                // object_store asks for a managed identity when nothing else is configured.
                if let Some(id) = env("AZURE_CLIENT_ID") {
                    b = b.with_config(AzureConfigKey::ClientId, id);
                } else if let Some(id) = env("AZURE_OBJECT_ID") {
                    b = b.with_config(AzureConfigKey::ObjectId, id);
                } else if let Some(id) = env("AZURE_MSI_RESOURCE_ID") {
                    b = b.with_config(AzureConfigKey::MsiResourceId, id);
                }
                // App Service and Azure Arc name their endpoint; a VM's is the IMDS address.
                if let Some(e) = env("AZURE_MSI_ENDPOINT")
                    .or_else(|| env("IDENTITY_ENDPOINT"))
                    .or_else(|| env("MSI_ENDPOINT"))
                {
                    b = b.with_msi_endpoint(e);
                }
            }
            AzureAuth::Cli => b = b.with_use_azure_cli(true),
        }
        let store = b.build().map_err(|e| Error::BadLocation {
            location: format!("az://{container}"),
            reason: e.to_string(),
        })?;
        Ok(AzureSource {
            store: Arc::new(store),
            container: container.to_string(),
            account,
            prefix: prefix.to_string(),
        })
    }

    fn path(&self, name: &str) -> Path {
        Path::from(format!("{}{name}", self.prefix))
    }
}

/// What to check when Azure refuses us.
const DENIED: &str = ". Access denied: check the account key or SAS token (and the SAS's expiry \
     and permissions: read and list), or that the signed-in identity has the Storage Blob Data \
     Reader role";

/// Whether the server said 401 or 403 (object_store's text is all a Generic error carries).
fn refused(e: &object_store::Error) -> bool {
    let text = e.to_string();
    text.contains("status code: 403") || text.contains("status code: 401")
}

/// The HTTP status object_store's text names (`… non-2xx status code: 404 Not Found: …`).
fn status_of(text: &str) -> Option<u16> {
    let k = text.find("status code: ")? + "status code: ".len();
    text.get(k..k + 3)?.parse().ok()
}

/// object_store's text with the service's XML body (`<?xml …><Error><Code>…`) replaced by
/// its code and the first line of its message: what the operator needs, without the XML.
fn tidy(text: &str) -> String {
    let Some(start) = text.find("<?xml").or_else(|| text.find("<Error>")) else {
        return text.to_string();
    };
    let tag = |t: &str| -> Option<String> {
        let open = format!("<{t}>");
        let a = text[start..].find(&open)? + start + open.len();
        let b = text[a..].find(&format!("</{t}>"))? + a;
        Some(
            text[a..b]
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .trim_end_matches('.')
                .to_string(),
        )
    };
    let head = text[..start].trim_end().trim_end_matches(':');
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{head}: {c}: {m}"),
        (Some(c), None) => format!("{head}: {c}"),
        (None, Some(m)) => format!("{head}: {m}"),
        (None, None) => head.to_string(),
    }
}

fn store_error(
    op: &'static str,
    object: &str,
    range: Option<Range<u64>>,
    e: object_store::Error,
) -> Error {
    use object_store::Error as E;
    let text = tidy(&e.to_string());
    let status = status_of(&text);
    let (transient, advice) = match &e {
        E::NotFound { .. } => (false, ""),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => (false, DENIED),
        E::Precondition { .. } | E::NotModified { .. } => (false, ""),
        // object_store reports a refused list request as Generic: a 401 or 403 in it is not
        // worth retrying.
        E::Generic { .. } if refused(&e) => (false, DENIED),
        E::Generic { .. } if text.contains("ContainerNotFound") => (
            false,
            ". Check the container's name in --bucket az://CONTAINER (and --account)",
        ),
        // Another 4xx (400, 404, 409 …) says the request is wrong: trying again cannot help,
        // and object_store has already retried what may pass (5xx, 408, 429, timeouts).
        E::Generic { .. }
            if status.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429) =>
        {
            (false, "")
        }
        E::Generic { .. } => (true, ""),
        _ => (false, ""),
    };
    Error::storage(
        op,
        object,
        range,
        Retry::when(transient),
        format!("{text}{advice}"),
    )
}

impl Source for AzureSource {
    fn kind(&self) -> &'static str {
        "azure"
    }

    fn describe(&self) -> String {
        let mut s = format!("az://{}/{}", self.container, self.prefix);
        if s.ends_with('/') {
            s.pop();
        }
        format!("{s} (account {})", self.account)
    }

    fn list<'a>(&'a self, name_prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        Box::pin(async move {
            let dir = self.prefix.trim_end_matches('/');
            let dir = (!dir.is_empty()).then(|| Path::from(dir));
            // One "directory" level, all pages: sub-prefixes are not part of this location.
            let listing = self
                .store
                .list_with_delimiter(dir.as_ref())
                .await
                .map_err(|e| store_error("listing", &self.describe(), None, e))?;
            let mut out = Vec::new();
            for o in listing.objects {
                let Some(name) = o.location.filename() else {
                    continue;
                };
                if name.starts_with(name_prefix) {
                    out.push(ObjectMeta {
                        name: name.to_string(),
                        size: o.size,
                        etag: o.e_tag,
                        not_a_file: None,
                    });
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
            let got = self
                .store
                .get_opts(
                    &self.path(name),
                    GetOptions {
                        range: Some(range.clone().into()),
                        ..GetOptions::default()
                    },
                )
                .await
                .map_err(|e| store_error("reading", name, Some(range.clone()), e))?;
            let etag = got.meta.e_tag.clone();
            let bytes = got
                .bytes()
                .await
                .map_err(|e| store_error("reading", name, Some(range.clone()), e))?;
            Ok(GetRange { bytes, etag })
        })
    }

    fn create<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Box<dyn Upload>>> {
        Box::pin(async move {
            let path = self.path(name);
            let upload = self
                .store
                .put_multipart(&path)
                .await
                .map_err(|e| store_error("starting the upload of", name, None, e))?;
            Ok(Box::new(AzureUpload {
                upload: Some(upload),
                name: name.to_string(),
                buf: Vec::new(),
                buffered: 0,
            }) as Box<dyn Upload>)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.store
                .delete(&self.path(name))
                .await
                .map_err(|e| store_error("deleting", name, None, e))
        })
    }

    fn default_concurrency(&self) -> usize {
        16
    }

    fn default_chunk_size(&self) -> u64 {
        8 << 20
    }
}

/// Blocks of about 8 MiB, committed on finish.
const BLOCK_SIZE: usize = 8 << 20;

#[derive(Debug)]
struct AzureUpload {
    upload: Option<Box<dyn MultipartUpload>>,
    name: String,
    buf: Vec<Bytes>,
    buffered: usize,
}

impl AzureUpload {
    async fn flush(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let payload: PutPayload = std::mem::take(&mut self.buf).into_iter().collect();
        self.buffered = 0;
        let up = self.upload.as_mut().expect("open until finished");
        up.put_part(payload)
            .await
            .map_err(|e| store_error("uploading", &self.name, None, e))
    }
}

impl Upload for AzureUpload {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.buffered += data.len();
            self.buf.push(data);
            if self.buffered >= BLOCK_SIZE {
                self.flush().await?;
            }
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            self.flush().await?;
            let mut up = self.upload.take().expect("open until finished");
            up.complete()
                .await
                .map_err(|e| store_error("completing the upload of", &self.name, None, e))?;
            Ok(())
        })
    }
}

impl Drop for AzureUpload {
    fn drop(&mut self) {
        if let Some(mut up) = self.upload.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = up.abort().await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_xml_becomes_its_code_and_message() {
        let raw = "Error performing GET http://127.0.0.1:1/acct/c?restype=container&comp=list in 9ms - \
                   Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                   <Error><Code>ContainerNotFound</Code><Message>The specified container does not exist.\n\
                   RequestId:1f2e\nTime:2026-12-01T00:00:00.000Z</Message></Error>";
        let t = tidy(raw);
        assert!(
            t.ends_with("404 Not Found: ContainerNotFound: The specified container does not exist"),
            "{t}"
        );
        assert!(!t.contains('<'), "{t}");
        assert_eq!(status_of(&t), Some(404));
        assert_eq!(tidy("no xml here"), "no xml here");
        assert_eq!(status_of("status code: 503 Service Unavailable"), Some(503));
    }

    #[test]
    fn connection_strings() {
        let c = ConnectionString::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(c.account_name.as_deref(), Some("acct"));
        assert_eq!(c.account_key.as_deref(), Some("a2V5=="));
        assert_eq!(
            c.blob_endpoint.as_deref(),
            Some("https://acct.blob.core.windows.net")
        );
        let d = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(d.account_name.as_deref(), Some("devstoreaccount1"));
        let s = ConnectionString::parse(
            "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1/;SharedAccessSignature=?sv=1&sig=x",
        )
        .unwrap();
        assert_eq!(s.sas.as_deref(), Some("sv=1&sig=x"));
        assert_eq!(
            s.blob_endpoint.as_deref(),
            Some("http://127.0.0.1:1/devstoreaccount1")
        );
        assert!(ConnectionString::parse("garbage").is_err());
    }
}
