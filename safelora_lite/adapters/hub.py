"""A model named by a folder or by a Hugging Face hub id -> a local folder of safetensors and config files.

A folder that exists is used as is. Any other name is read as a hub id (`org/name`) and resolved by
huggingface_hub's `snapshot_download`: the local Hugging Face cache first ($HF_HUB_CACHE; only the
cache when $HF_HUB_OFFLINE is set), else a download of `*.safetensors` and `*.json` files only, never
pickled `.bin` weights; $HF_TOKEN opens gated models, `revision` picks a branch, tag or commit.
`resolve_pair` does it for a command's --base / --aligned, after checking its OUT. Nothing is loaded
here: the weights stay on disk and are streamed one module at a time (`weights.Checkpoint`). Every
failure is one InputError line: offline, gated, unknown, no safetensors.
"""

import os
from pathlib import Path

from safelora_lite.errors import InputError
from safelora_lite.outputs import check_new_output

DOWNLOAD_PATTERNS = ("*.safetensors", "*.json")  # weights (safetensors only), config, shard index
EXAMPLE_ID = "meta-llama/Llama-2-7b-hf"


def resolve_model(name: str | os.PathLike, revision: str | None = None, option: str = "model") -> Path:
    """The local folder for `name`: the folder itself, or the hub snapshot of the id `name` at `revision`."""
    if Path(name).is_dir():
        return Path(name)
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HFValidationError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    at = f" at revision {revision}" if revision else ""
    try:
        folder = Path(snapshot_download(str(name), revision=revision, allow_patterns=list(DOWNLOAD_PATTERNS)))
    except HFValidationError:
        raise InputError(f"{option} {name}: no such folder, and not a hub id.",
                         f"pass a folder saved with save_pretrained, or a hub id such as {EXAMPLE_ID}.") from None
    except LocalEntryNotFoundError:
        why = "offline mode is on (HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE else "the hub cannot be reached"
        raise InputError(f"{option} {name}: no such folder, and the hub model {name}{at} is not in the local Hugging Face "
                         f"cache ({constants.HF_HUB_CACHE}) and {why}, so it cannot be downloaded.",
                         "download it once where the hub is reachable (hf download), or pass a local folder.") from None
    except GatedRepoError:
        raise InputError(f"{option} {name} is gated on the Hugging Face hub and this login has no access to it.",
                         "accept its licence on huggingface.co, then set HF_TOKEN (or run `hf auth login`).") from None
    except RevisionNotFoundError:
        raise InputError(f"{option} {name} has no revision {revision} on the Hugging Face hub.",
                         "use a branch, tag or commit of that repository, or drop --revision (main).") from None
    except RepositoryNotFoundError:
        raise InputError(f"{option} {name}: no such folder, and no such model on the Hugging Face hub (or it is private).",
                         "check the spelling; for a private model set HF_TOKEN.") from None
    except HfHubHTTPError as error:
        raise InputError(f"{option} {name}: the download failed ({str(error).splitlines()[0]}).", "try again, or pass a local folder.") from None
    if not any(folder.glob("*.safetensors")):
        raise InputError(f"{option} {name}{at} has no safetensors weights on the hub (only pickled .bin files, which are never loaded here).",
                         "use a revision or repository that ships .safetensors, or convert it with save_pretrained(safe_serialization=True).")
    return folder


def resolve_pair(base, aligned, revision: str | None = None, out=None, inputs=()) -> tuple[Path, Path]:
    """A command's --base and --aligned as folders. OUT (if given) is checked first, against the inputs as
    named, and again against the resolved folders: a bad OUT never costs a download or a scoring pass."""
    if revision is not None and Path(base).is_dir() and Path(aligned).is_dir():
        raise InputError(f"--revision {revision} applies to hub ids, and --base and --aligned are both folders.", "drop --revision.")
    if out is not None:
        check_new_output(out, [*inputs, base, aligned])
    folders = resolve_model(base, revision, "--base"), resolve_model(aligned, revision, "--aligned")
    if out is not None:
        check_new_output(out, folders)
    return folders
