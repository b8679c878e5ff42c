"""The best mIoU a model with logits at 1/``stride`` resolution can reach on a folder of label maps.

    python tools/resolution_ceiling.py [data/digit_scenes/ann_dir/val] [--stride 8] [--num-classes 11]

Each label map is reduced to the true class shares of each ``stride`` x ``stride`` cell, upsampled
bilinearly as MMSeg upsamples logits, and scored by its argmax (ignore index 255) as MMSeg's IoUMetric scores.
"""

import argparse
import glob
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_dir', nargs='?', default='data/digit_scenes/ann_dir/val')
    parser.add_argument('--stride', type=int, default=8)
    parser.add_argument('--num-classes', type=int, default=11)
    args = parser.parse_args()
    paths = sorted(glob.glob(osp.join(args.ann_dir, '*.png')))
    if not paths:
        raise SystemExit(
            f'no label maps (*.png) in {args.ann_dir!r}; `python tools/demo.py --data-only` writes the digit scenes'
        )
    num_classes = args.num_classes
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    for path in paths:
        gt = torch.from_numpy(np.array(Image.open(path))).long()
        valid = gt != 255
        onehot = F.one_hot(gt.clamp(max=num_classes - 1), num_classes).permute(2, 0, 1).float()[None] * valid
        cells = (gt.shape[0] // args.stride, gt.shape[1] // args.stride)
        shares = F.adaptive_avg_pool2d(onehot, cells)
        pred = F.interpolate(shares, size=gt.shape, mode='bilinear', align_corners=False)[0].argmax(0)
        for c in range(num_classes):
            p, g = (pred == c) & valid, (gt == c) & valid
            inter[c] += (p & g).sum().item()
            union[c] += (p | g).sum().item()
    present = union > 0  # as MMSeg's IoUMetric: classes absent from labels and prediction do not count
    miou = 100 * np.mean(inter[present] / union[present])
    print(f'{len(paths)} label maps, logits at 1/{args.stride}: best mIoU {miou:.2f}')


if __name__ == '__main__':
    main()
