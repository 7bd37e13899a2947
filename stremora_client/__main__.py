"""``python -m stremora_client upload FILE --title T --url URL --token KEY [--resume]``

Prints the video's id and URL and exits 0, or prints one line saying what went wrong
and exits 1 (2 for a wrong command line, 130 when interrupted). ``--url`` and
``--token`` default to ``$STREMORA_URL`` and ``$STREMORA_TOKEN``: a token in the
environment stays out of the process list.
"""

import argparse
import os
import sys

from stremora_client.client import Client
from stremora_client.errors import ServerRefused, UploadError


def parser():
    commands = argparse.ArgumentParser(prog="python -m stremora_client", description="Upload videos to Stremora.")
    subcommands = commands.add_subparsers(dest="command", required=True)
    upload = subcommands.add_parser("upload", help="upload a video file straight to the storage provider")
    upload.add_argument("file", metavar="FILE")
    upload.add_argument("--title", required=True)
    upload.add_argument("--description", default="")
    upload.add_argument("--publish", action="store_true", help="publish the video at once")
    upload.add_argument("--replace", type=int, metavar="VIDEO_ID", help="replace this video's file instead")
    upload.add_argument("--url", default=os.environ.get("STREMORA_URL"), help="the server (default: $STREMORA_URL)")
    upload.add_argument("--token", default=os.environ.get("STREMORA_TOKEN"),
                        help="your API token (default: $STREMORA_TOKEN)")
    upload.add_argument("--resume", action="store_true", help="carry on an interrupted upload of this file")
    upload.add_argument("--parallel", type=int, default=4, metavar="N", help="S3 parts sent at once (default 4)")
    upload.add_argument("--quiet", action="store_true", help="no progress bar")
    return commands


def main(argv=None):
    commands = parser()
    arguments = commands.parse_args(argv)
    if not arguments.url or not arguments.token:
        commands.error("--url and --token are needed (or $STREMORA_URL and $STREMORA_TOKEN)")
    if arguments.parallel < 1:
        commands.error("--parallel must be at least 1")
    try:
        video = Client(arguments.url, arguments.token).upload(
            arguments.file,
            title=arguments.title,
            description=arguments.description,
            is_published=arguments.publish,
            video=arguments.replace,
            resume=arguments.resume,
            progress=not arguments.quiet,
            parallel=arguments.parallel,
        )
    except ServerRefused as refusal:
        print(f"stremora_client: the server refused the upload ({refusal.status}): {refusal}", file=sys.stderr)
        return 1
    except UploadError as error:
        print(f"stremora_client: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"stremora_client: cannot read {arguments.file}: {error.strerror or error}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError) as error:
        print(f"stremora_client: the server's answer is not what this client expects ({type(error).__name__}: "
              f"{error})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstremora_client: interrupted; run the same command with --resume to carry on", file=sys.stderr)
        return 130
    print(f"Video {video['id']} stored on {video.get('storage_provider')}: {video.get('video_url')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
