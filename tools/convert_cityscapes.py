"""Create Cityscapes' ``*_gtFine_labelTrainIds.png`` maps from the gtFine polygons (cityscapesscripts).

    python tools/convert_cityscapes.py data/cityscapes [--nproc 8]

Expects ``CITYSCAPES/gtFine/{train,val,test}/<city>/*_gtFine_polygons.json`` (from gtFine_trainvaltest.zip).
Every file that cannot be converted (a corrupt JSON, a polygon with a label cityscapesscripts does not
know) is reported by name; the others are converted, and the run ends with a summary (exit status 1 when
any file failed).
"""

import argparse
import contextlib
import glob
import io
import os.path as osp
import sys
from multiprocessing import Pool
from typing import Optional, Tuple

from cityscapesscripts.preparation.json2labelImg import json2labelImg
from mmengine.utils import ProgressBar


def convert_json_to_label(json_file: str) -> Tuple[str, Optional[str]]:
    """``(json_file, None)`` when converted, ``(json_file, reason)`` when not. Never raises: cityscapesscripts
    calls sys.exit on an unknown label, which would otherwise kill the pool worker and hang the pool."""
    label_file = json_file.replace('_polygons.json', '_labelTrainIds.png')
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            json2labelImg(json_file, label_file, 'trainIds')
    except BaseException as err:  # SystemExit from cityscapesscripts, too
        reason = printed.getvalue().strip() or f'{type(err).__name__}: {err}'
        return json_file, reason.replace('ERROR: ', '')
    return json_file, None


def convert(cityscapes_path: str, gt_dir: str = 'gtFine', nproc: int = 1) -> dict:
    """Convert every polygon file; returns ``{json_file: reason}`` of the files that failed."""
    root = osp.join(cityscapes_path, gt_dir)
    files = sorted(glob.glob(osp.join(root, '**', '*_polygons.json'), recursive=True))
    if not files:
        raise FileNotFoundError(
            f'No *_polygons.json under {root}: unpack gtFine_trainvaltest.zip into {cityscapes_path} first'
        )
    failed = {}
    progress = ProgressBar(len(files))
    with Pool(nproc) as pool:
        for json_file, reason in pool.imap_unordered(convert_json_to_label, files, chunksize=16):
            if reason is not None:
                failed[json_file] = reason
            progress.update()
    print(f'\n{len(files) - len(failed)} of {len(files)} label maps written under {root}')
    for json_file, reason in sorted(failed.items()):
        print(f'  FAILED {json_file}: {reason}')
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('cityscapes_path', help='the Cityscapes root (holds gtFine/ and leftImg8bit/)')
    parser.add_argument('--gt-dir', default='gtFine')
    parser.add_argument('--nproc', type=int, default=1)
    args = parser.parse_args(argv)
    failed = convert(args.cityscapes_path, args.gt_dir, args.nproc)
    if failed:
        print(
            f'{len(failed)} files could not be converted (listed above): fix or re-download them, then run this again',
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == '__main__':
    main()
