"""A client of Stremora's direct uploads: the bytes go from here straight to the storage
provider the server picks (S3 parts in parallel, Cloudinary or the server's own disk
in chunks), with a progress bar, resume and fallback to the next provider.

    import stremora_client
    video = stremora_client.upload("harbour.mp4", url="https://videos.example.com", token=KEY,
                                   title="Harbour", resume=True)

    python -m stremora_client upload harbour.mp4 --title Harbour --url URL --token KEY --resume

It needs only ``requests``.
"""

from stremora_client.client import Client, upload
from stremora_client.errors import ServerRefused, UploadError

__all__ = ["Client", "ServerRefused", "UploadError", "upload"]
