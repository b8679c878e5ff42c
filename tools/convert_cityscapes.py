"""Create Cityscapes' ``*_gtFine_labelTrainIds.png`` maps from the gtFine polygons (cityscapesscripts).

    python tools/convert_cityscapes.py data/cityscapes [--nproc 8]

Expects ``CITYSCAPES/gtFine/{train,val,test}/<city>/*_gtFine_polygons.json`` (from gtFine_trainvaltest.zip).
"""
import argparse
import glob
import os.path as osp
from multiprocessing import Pool

from cityscapesscripts.preparation.json2labelImg import json2labelImg


def convert_json_to_label(json_file):
    label_file = json_file.replace('_polygons.json', '_labelTrainIds.png')
    json2labelImg(json_file, label_file, 'trainIds')
    return label_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('cityscapes_path', help='the Cityscapes root (holds gtFine/ and leftImg8bit/)')
    parser.add_argument('--gt-dir', default='gtFine')
    parser.add_argument('--nproc', type=int, default=1)
    args = parser.parse_args(argv)
    gt_dir = osp.join(args.cityscapes_path, args.gt_dir)
    files = sorted(glob.glob(osp.join(gt_dir, '**', '*_polygons.json'), recursive=True))
    if not files:
        raise FileNotFoundError(f'No *_polygons.json under {gt_dir}: unpack gtFine_trainvaltest.zip into '
                                f'{args.cityscapes_path} first')
    with Pool(args.nproc) as pool:
        for i, _ in enumerate(pool.imap_unordered(convert_json_to_label, files), 1):
            if i % 500 == 0 or i == len(files):
                print(f'{i}/{len(files)} label maps written')


if __name__ == '__main__':
    main()
