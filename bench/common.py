"""What every benchmark's site shares: the bucket, the throwaway secret, the S3 test
credentials, and the variables of the caller's shell that must not reach the servers
a benchmark starts (they would point it at a real provider, another database or a
job queue)."""

from types import SimpleNamespace

BUCKET = "stremora-bench"
MIB = 1024 * 1024
SECRET_KEY = "stremora-bench-secret-key-not-for-production"
S3_CREDENTIALS = SimpleNamespace(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
FOREIGN_VARIABLES = ("CLOUDINARY_URL", "CLOUDINARY_UPLOAD_PREFIX", "CLOUDINARY_DELIVERY_PREFIX", "AWS_ACCESS_KEY_ID",
                     "AWS_SECRET_ACCESS_KEY", "AWS_S3_BUCKET_NAME", "AWS_S3_ENDPOINT_URL", "STORAGE_PROVIDERS",
                     "CACHE_URL", "MEDIA_ROOT", "DATABASE_URL", "DEBUG", "CELERY_BROKER_URL", "PROVIDER_WAIT_SLOTS")
