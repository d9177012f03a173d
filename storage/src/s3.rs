//! The S3 backend: any S3-compatible service (AWS S3, MinIO, Cloudflare R2, Garage, s3s),
//! behind the upload queue and spool of `uploader`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier};
use aws_smithy_http_client::tls;
use bytes::Bytes;

use crate::uploader::{Options, Remote, Uploader};
use crate::{Object, ObjectMeta, Store, StoreError, UploadStats, check_key, intern_cache_control, intern_content_type};

/// How viewers get immutable objects (segments, init segments, posters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// hawker reads every object from the store and serves it (needed for LL-HLS blocking
    /// reload; works with a private bucket).
    #[default]
    Serve,
    /// hawker answers with a redirect to `public_base_url` (or a presigned bucket URL) for
    /// objects already uploaded; objects still in the spool, and playlists, it serves itself.
    Redirect,
}

#[derive(Clone)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000`; `None` for AWS S3 (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// `None`: from the AWS chain (`AWS_REGION`, profile), else `us-east-1`.
    pub region: Option<String>,
    pub bucket: String,
    /// Prepended to every key, e.g. `hawker/` (a trailing `/` is added when missing).
    pub prefix: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Static credentials from the config file; `None`: the standard AWS chain
    /// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, …).
    pub credentials: Option<(String, String)>,
    /// Create the bucket on start when it does not exist.
    pub create_bucket: bool,
    pub delivery: Delivery,
    /// Base URL under which the bucket's object keys are public (a CDN, or the bucket's
    /// public URL); for `Redirect`. `None`: redirect to presigned URLs (private bucket).
    pub public_base_url: Option<String>,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub upload_concurrency: usize,
    /// Warn when the average upload takes longer (0.9 × the segment duration).
    pub slow_upload_warning: Option<Duration>,
}

/// Shows everything but the secret.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("credentials", &self.credentials.as_ref().map(|(id, _)| (id, "<secret>")))
            .field("create_bucket", &self.create_bucket)
            .field("delivery", &self.delivery)
            .field("public_base_url", &self.public_base_url)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("upload_concurrency", &self.upload_concurrency)
            .field("slow_upload_warning", &self.slow_upload_warning)
            .finish()
    }
}

impl S3Config {
    pub fn new(bucket: impl Into<String>, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            endpoint: None,
            region: None,
            bucket: bucket.into(),
            prefix: String::new(),
            path_style: false,
            credentials: None,
            create_bucket: false,
            delivery: Delivery::Serve,
            public_base_url: None,
            spool_dir: spool_dir.into(),
            spool_max_bytes: 2 << 30,
            upload_concurrency: 4,
            slow_upload_warning: None,
        }
    }
}

pub(crate) struct S3Remote {
    client: Client,
    bucket: String,
    prefix: String,
    delivery: Delivery,
    public_base_url: Option<String>,
}

/// An S3-compatible bucket behind a spool: `put` returns once the object is in the spool.
pub struct S3Store {
    uploader: Uploader<S3Remote>,
    delivery_origin: Option<String>,
}

/// `scheme://host[:port]` of an absolute URL, without user info; `None` for anything else.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    let scheme_valid = matches!(scheme, "http" | "https");
    (scheme_valid && !host.is_empty() && host.chars().all(valid)).then(|| format!("{scheme}://{host}"))
}

fn remote_error<E, R>(what: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let detail = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or(""))
        }
        other => format!("{}", aws_sdk_s3::error::DisplayErrorContext(other)),
    };
    StoreError::Remote(format!("{what}: {detail}"))
}

impl S3Store {
    /// Connects, checks the bucket (creating it when allowed), opens the spool and starts the
    /// upload workers. A bucket that does not exist (and may not be created) or refuses our
    /// credentials is an error; an unreachable endpoint is only a warning: objects spool until
    /// it answers.
    pub async fn connect(config: S3Config) -> Result<Self, StoreError> {
        if config.bucket.is_empty() {
            return Err(StoreError::Remote("no S3 bucket configured".into()));
        }
        // The SDK's default HTTPS client (proxies from HTTPS_PROXY/NO_PROXY, system roots),
        // on ring rather than aws-lc.
        let https = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
            let mut connector = aws_smithy_http_client::ConnectorBuilder::default()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(aws_smithy_http_client::proxy::ProxyConfig::from_env()));
            connector.build()
        });
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint.trim_end_matches('/'));
        }
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((id, secret)) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "hawker-config"));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            // Many S3-compatible servers reject the newer default checksums (aws-chunked
            // trailers): send them only where the API requires one.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if shared.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        let client = Client::from_conf(builder.build());
        let mut prefix = config.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let remote = S3Remote {
            client,
            bucket: config.bucket.clone(),
            prefix,
            delivery: config.delivery,
            public_base_url: config.public_base_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
        };
        remote.check_bucket(config.create_bucket).await?;
        let options = Options {
            spool_dir: config.spool_dir,
            spool_max_bytes: config.spool_max_bytes,
            concurrency: config.upload_concurrency,
            slow_upload_warning: config.slow_upload_warning,
            cache_bytes: 64 << 20,
            backoff: (Duration::from_millis(250), Duration::from_secs(2)),
        };
        // Every redirect goes to one origin (the CDN, or the bucket's endpoint): a sample
        // URL tells it.
        let delivery_origin = remote.public_url("origin-probe").await.as_deref().and_then(origin_of);
        if config.delivery == Delivery::Redirect && delivery_origin.is_none() {
            tracing::warn!(
                "redirect delivery without an http(s) origin to redirect to: the pages' Content-Security-Policy \
                 will not let browsers play from the bucket (check s3_public_base_url)"
            );
        }
        Ok(Self { uploader: Uploader::start(remote, options)?, delivery_origin })
    }

    pub fn stats(&self) -> UploadStats {
        self.uploader.stats()
    }

    /// Waits until every spooled object is uploaded; false when `timeout` passes first.
    pub async fn drained(&self, timeout: Duration) -> bool {
        self.uploader.drained(timeout).await
    }

    pub fn bucket(&self) -> &str {
        &self.uploader.remote().bucket
    }
}

#[async_trait]
impl Store for S3Store {
    async fn put(&self, key: &str, bytes: Bytes, meta: ObjectMeta) -> Result<(), StoreError> {
        self.uploader.put(key, bytes, meta).await
    }
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.uploader.get(key).await
    }
    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.uploader.get_local(key).await? {
            Some(object) => Ok(Some(object.bytes.len() as u64)),
            None => self.uploader.remote().size(key).await,
        }
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Option<Bytes>, StoreError> {
        match self.uploader.get_local(key).await? {
            Some(object) => {
                let range = usize::try_from(offset).ok().zip(usize::try_from(offset.saturating_add(len)).ok());
                Ok(range
                    .filter(|&(_, end)| end <= object.bytes.len())
                    .map(|(start, end)| object.bytes.slice(start..end)))
            }
            None => self.uploader.remote().get_range(key, offset, len).await,
        }
    }
    async fn put_file(&self, key: &str, path: &Path, meta: ObjectMeta) -> Result<(), StoreError> {
        check_key(key)?;
        self.uploader.remote().put_file(key, path, meta).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.uploader.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.uploader.list(prefix).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        self.uploader.delete_prefix(prefix).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<usize, StoreError> {
        self.uploader.delete_many(keys).await
    }
    async fn public_url(&self, key: &str) -> Option<String> {
        self.uploader.public_url(key).await
    }

    fn delivery_origin(&self) -> Option<&str> {
        self.delivery_origin.as_deref()
    }

    fn upload_stats(&self) -> Option<UploadStats> {
        Some(self.stats())
    }
}

impl S3Remote {
    async fn check_bucket(&self, create: bool) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.client.head_bucket().bucket(&self.bucket).send().await {
                Ok(_) => {
                    tracing::info!(bucket = %self.bucket, prefix = %self.prefix, "S3 bucket ready");
                    return Ok(());
                }
                Err(err) => err,
            };
            let status = err.raw_response().map(|r| r.status().as_u16());
            let missing = err.as_service_error().is_some_and(|e| e.is_not_found()) || status == Some(404);
            if missing && create {
                return self.create_bucket().await;
            }
            if missing {
                return Err(StoreError::Remote(format!(
                    "S3 bucket {:?} does not exist; create it, or allow hawker to (HAWKER_S3_CREATE_BUCKET=true / s3_create_bucket = true)",
                    self.bucket
                )));
            }
            if matches!(status, Some(400 | 401 | 403)) {
                return Err(StoreError::Remote(format!(
                    "S3 refused access to bucket {:?} (HTTP {}): check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile), the region and the endpoint",
                    self.bucket,
                    status.unwrap_or(0)
                )));
            }
            if attempt >= 3 {
                tracing::warn!(
                    bucket = %self.bucket,
                    error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                    "S3 is unreachable at start: objects will wait in the spool until it answers"
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn create_bucket(&self) -> Result<(), StoreError> {
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        let region = self.client.config().region().map(|r| r.as_ref().to_owned());
        if let Some(region) = region.filter(|r| r != "us-east-1") {
            let constraint = BucketLocationConstraint::from(region.as_str());
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder().location_constraint(constraint).build(),
            );
        }
        match request.send().await {
            Ok(_) => {
                tracing::warn!(bucket = %self.bucket, "S3 bucket did not exist: created it");
                Ok(())
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()) =>
            {
                Ok(())
            }
            Err(err) => Err(remote_error(&format!("creating bucket {:?}", self.bucket), err)),
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
            Ok(out) => Ok(out.content_length().and_then(|n| u64::try_from(n).ok())),
            Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(err) => Err(remote_error("head", err)),
        }
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Option<Bytes>, StoreError> {
        if len == 0 {
            return Ok(self.size(key).await?.filter(|&size| offset <= size).map(|_| Bytes::new()));
        }
        let range = format!("bytes={offset}-{}", offset.saturating_add(len - 1));
        let out = match self.client.get_object().bucket(&self.bucket).key(self.full_key(key)).range(range).send().await
        {
            Ok(out) => out,
            Err(err) if err.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 404 | 416)) => {
                return Ok(None);
            }
            Err(err) => return Err(remote_error("get range", err)),
        };
        let bytes = out.body.collect().await.map_err(|e| StoreError::Remote(format!("get range: {e}")))?.into_bytes();
        // Shorter than asked: the object ends before the range does.
        Ok((bytes.len() as u64 == len).then_some(bytes))
    }

    /// A file straight to the bucket: one request up to `PART_SIZE`, else a multipart upload
    /// read part by part from the file (one part in memory at a time), aborted on failure.
    async fn put_file(&self, key: &str, path: &Path, meta: ObjectMeta) -> Result<(), StoreError> {
        const PART_SIZE: u64 = 16 << 20;
        let size = tokio::fs::metadata(path).await?.len();
        let full_key = self.full_key(key);
        if size <= PART_SIZE {
            let body = ByteStream::from_path(path).await.map_err(|e| StoreError::Remote(format!("put file: {e}")))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&full_key)
                .content_type(meta.content_type)
                .cache_control(meta.cache_control)
                .body(body)
                .send()
                .await
                .map_err(|e| remote_error("put file", e))?;
            return Ok(());
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .content_type(meta.content_type)
            .cache_control(meta.cache_control)
            .send()
            .await
            .map_err(|e| remote_error("start multipart upload", e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let uploaded = self.put_parts(&full_key, &upload_id, path, size, PART_SIZE).await;
        if uploaded.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full_key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        uploaded
    }

    async fn put_parts(
        &self,
        full_key: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
        part_size: u64,
    ) -> Result<(), StoreError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(path).await?;
        let mut parts = Vec::new();
        let mut offset = 0;
        while offset < size {
            let len = part_size.min(size - offset);
            let mut buf = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
            file.read_exact(&mut buf).await?;
            let number = i32::try_from(parts.len() + 1).map_err(|_| StoreError::Remote("too many parts".into()))?;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full_key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| remote_error("upload part", e))?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_owned)).build());
            offset += len;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full_key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| remote_error("complete multipart upload", e))?;
        Ok(())
    }
}

#[async_trait]
impl Remote for S3Remote {
    async fn put(&self, key: &str, bytes: Bytes, meta: ObjectMeta) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_type(meta.content_type)
            .cache_control(meta.cache_control)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| remote_error("put", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let out = match self.client.get_object().bucket(&self.bucket).key(self.full_key(key)).send().await {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 404) => return Ok(None),
            Err(err) => return Err(remote_error("get", err)),
        };
        let meta = ObjectMeta {
            content_type: intern_content_type(out.content_type().unwrap_or("")),
            cache_control: intern_cache_control(out.cache_control().unwrap_or("")),
        };
        let bytes = out.body.collect().await.map_err(|e| StoreError::Remote(format!("get: {e}")))?.into_bytes();
        Ok(Some(Object { bytes, meta }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full_key(prefix))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| remote_error("list", e))?;
            for object in out.contents() {
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    keys.push(key.to_owned());
                }
            }
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete_batch(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(self.full_key(k)).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Remote(format!("delete: {e}")))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| StoreError::Remote(format!("delete: {e}")))?;
        let out = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| remote_error("delete", e))?;
        if let Some(error) = out.errors().first() {
            return Err(StoreError::Remote(format!(
                "delete {}: {} {}",
                error.key().unwrap_or("?"),
                error.code().unwrap_or(""),
                error.message().unwrap_or("")
            )));
        }
        Ok(())
    }

    async fn public_url(&self, key: &str) -> Option<String> {
        if self.delivery != Delivery::Redirect {
            return None;
        }
        let full = self.full_key(key);
        if let Some(base) = &self.public_base_url {
            return Some(format!("{base}/{full}"));
        }
        let presign = PresigningConfig::expires_in(Duration::from_secs(3600)).ok()?;
        match self.client.get_object().bucket(&self.bucket).key(full).presigned(presign).await {
            Ok(request) => Some(request.uri().to_owned()),
            Err(e) => {
                tracing::warn!(key, error = %e, "presigning failed: serving the object instead");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(delivery: Delivery, public_base_url: Option<&str>) -> S3Remote {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .force_path_style(true)
            .credentials_provider(Credentials::new("AK", "SK", None, None, "test"))
            .build();
        S3Remote {
            client: Client::from_conf(config),
            bucket: "media".into(),
            prefix: "pfx/".into(),
            delivery,
            public_base_url: public_base_url.map(str::to_owned),
        }
    }

    #[test]
    fn origins_of_delivery_urls() {
        assert_eq!(origin_of("https://cdn.example/pfx/a.m4s").as_deref(), Some("https://cdn.example"));
        assert_eq!(origin_of("http://127.0.0.1:9000/b/k?X-Amz-Signature=1").as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            origin_of("https://user:pw@bucket.s3.amazonaws.com").as_deref(),
            Some("https://bucket.s3.amazonaws.com")
        );
        assert_eq!(origin_of("https://[::1]:9000/x").as_deref(), Some("https://[::1]:9000"));
        for bad in ["cdn.example/x", "javascript://x", "https://a b/", "https:///x", "https://a;b/"] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn redirect_urls_name_the_prefixed_key() {
        let key = "streams/p/v0/seg000001.m4s";
        assert_eq!(remote(Delivery::Serve, Some("https://cdn.example")).public_url(key).await, None);
        assert_eq!(
            remote(Delivery::Redirect, Some("https://cdn.example")).public_url(key).await.as_deref(),
            Some("https://cdn.example/pfx/streams/p/v0/seg000001.m4s")
        );
        let presigned = remote(Delivery::Redirect, None).public_url(key).await.unwrap();
        assert!(presigned.starts_with("http://127.0.0.1:9/media/pfx/streams/p/v0/seg000001.m4s?"), "{presigned}");
        assert!(presigned.contains("X-Amz-Expires=3600") && presigned.contains("X-Amz-Signature="), "{presigned}");
        assert!(!presigned.contains("SK"));
    }
}
