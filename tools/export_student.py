"""Turn a distiller checkpoint into a plain MMSegmentation checkpoint of its student.

    python tools/export_student.py CONFIG CHECKPOINT OUT.pth

Writes OUT.pth (the student's state_dict and meta) and OUT.py (a plain MMSeg config of the student, the
distiller config with ``model`` replaced by ``model.student``), so that
``mmseg.apis.init_model('OUT.py', 'OUT.pth')`` predicts exactly as the distiller does.
"""

import argparse

from gdkd_seg.export import export_student


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distiller config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='distiller checkpoint (e.g. work_dirs/.../iter_40000.pth)')
    parser.add_argument('out', help='output checkpoint path (.pth); the student config goes beside it (.py)')
    args = parser.parse_args(argv)
    ckpt, cfg = export_student(args.config, args.checkpoint, args.out)
    print(f'student checkpoint: {ckpt}\nstudent config:     {cfg}')


if __name__ == '__main__':
    main()
