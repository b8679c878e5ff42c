"""Nothing silent, nothing lost: strict checkpoints, non-finite values, data checks, conversion errors, safe
emergency checkpoints and exact resume."""

import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import runner_cfg, save_random_segmentor, tiny_segmentor, write_seg_folder
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmseg.registry import HOOKS, MODELS
from PIL import Image

from gdkd_seg import runner as gdkd_runner
from gdkd_seg.datasets.checks import DatasetNotFoundError
from gdkd_seg.engine.safety import NonFiniteLossError
from gdkd_seg.export import export_student
from gdkd_seg.losses import CWDLoss, DKDLoss, GDKDLoss, KDLoss
from gdkd_seg.models import TeacherCheckpointError
from gdkd_seg.utils import CheckpointMismatchError, CheckpointReadError, safe_torch_load

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def distiller(teacher_ckpt, student_width=8, dropout=0.0):
    student = tiny_segmentor(3, width=student_width, aux=True)
    student.decode_head.dropout_ratio = dropout
    return dict(
        type='SegDistiller',
        student=student,
        teacher=tiny_segmentor(3, width=16, aux=True),
        teacher_checkpoint=str(teacher_ckpt),
        distill_losses=dict(
            decode=dict(
                student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=dict(type='GDKDLoss', topk=1)
            )
        ),
    )


@pytest.fixture
def toy(tmp_path):
    root = write_seg_folder(str(tmp_path / 'data'), n_train=6, n_val=2)
    teacher = save_random_segmentor(tmp_path / 'teacher.pth')
    return root, teacher


def dump(cfg, path):
    cfg.custom_imports = dict(imports=['gdkd_seg'])
    cfg.dump(str(path))
    return str(path)


# -- 1. checkpoints that do not fit their config -------------------------------------------------------------


@pytest.fixture
def trained(tmp_path, toy):
    """A distiller trained 2 iterations, its config, and the student's plain config."""
    root, teacher = toy
    config = dump(runner_cfg(tmp_path / 'work', root, distiller(teacher), max_iters=2), tmp_path / 'distiller.py')
    gdkd_runner.train(config)
    plain = dump(runner_cfg(tmp_path / 'plain', root, tiny_segmentor(3, width=8, aux=True)), tmp_path / 'plain.py')
    return config, str(tmp_path / 'work' / 'iter_2.pth'), plain, root


def test_test_refuses_a_checkpoint_of_another_config(tmp_path, trained):
    config, ckpt, plain, root = trained
    with pytest.raises(CheckpointMismatchError, match=r'iter_2\.pth is a distiller checkpoint(.|\n)*export_student'):
        gdkd_runner.test(plain, ckpt, work_dir=str(tmp_path / 't1'))
    student, _ = export_student(config, ckpt, str(tmp_path / 'student.pth'))
    with pytest.raises(CheckpointMismatchError, match=r'student\.pth is a plain model checkpoint(.|\n)*student\.py'):
        gdkd_runner.test(config, student, work_dir=str(tmp_path / 't2'))
    wider = dump(runner_cfg(tmp_path / 'w', root, tiny_segmentor(3, width=16, aux=True)), tmp_path / 'wider.py')
    with pytest.raises(
        CheckpointMismatchError,
        match=r'backbone\.stem\.0\.weight: checkpoint \[4, 3, 3, 3\] vs '
        r'config \[8, 3, 3, 3\](.|\n)*another architecture or width',
    ):
        gdkd_runner.test(wider, student, work_dir=str(tmp_path / 't3'))
    # the exported student with its own config and the distiller checkpoint with its config do test
    assert 0 <= gdkd_runner.test(str(tmp_path / 'student.py'), student, work_dir=str(tmp_path / 't4'))['mIoU'] <= 100
    assert 0 <= gdkd_runner.test(config, ckpt, work_dir=str(tmp_path / 't5'))['mIoU'] <= 100


def test_export_checks_the_weights_and_leaves_nothing_when_it_fails(tmp_path, trained, toy):
    config, ckpt, _, root = trained
    _, teacher = toy
    other = dump(runner_cfg(tmp_path / 'o', root, distiller(teacher, student_width=16)), tmp_path / 'other.py')
    with pytest.raises(CheckpointMismatchError, match=r'does not fit the student of .*other\.py'):
        export_student(other, ckpt, str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists() and not (tmp_path / 'out.py').exists()


PLAIN_MMSEG_PREDICTION = """
import sys
sys.modules['gdkd_seg'] = None  # as where gdkd_seg is not installed
import numpy as np
from mmseg.apis import inference_model, init_model
config, checkpoint, image, out = sys.argv[1:]
np.save(out, inference_model(init_model(config, checkpoint, device='cpu'), image).seg_logits.data.numpy())
"""


def test_the_exported_student_is_plain_mmseg(tmp_path, toy):
    from mmseg.apis import inference_model

    root, teacher = toy
    cfg = runner_cfg(tmp_path / 'work', root, distiller(teacher))
    cfg.test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    cfg.test_dataloader.dataset.pipeline.insert(2, dict(type='CheckSegLabels', num_classes=3))
    hooks = ['DistillWarmupHook', 'TeacherEvalHook', 'NonFiniteLossHook', 'RandomStateHook', 'EmptyCacheHook']
    cfg.custom_hooks = [dict(type=hook) for hook in hooks]
    config = dump(cfg, tmp_path / 'distiller.py')
    model = MODELS.build(cfg.model).eval()
    torch.save({'state_dict': model.state_dict(), 'meta': {'iter': 2}}, tmp_path / 'iter_2.pth')
    weights, student_cfg = export_student(config, str(tmp_path / 'iter_2.pth'), str(tmp_path / 'student.pth'))
    text = open(student_cfg).read()
    assert 'gdkd_seg' not in text and 'CheckSegLabels' not in text
    assert [hook['type'] for hook in Config.fromfile(student_cfg).custom_hooks] == ['EmptyCacheHook']
    image = osp.join(root, 'img_dir', 'val', '000.png')
    out = str(tmp_path / 'plain.npy')
    result = subprocess.run(
        [sys.executable, '-c', PLAIN_MMSEG_PREDICTION, student_cfg, weights, image, out],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model.student.cfg = cfg
    expected = inference_model(model.student, image).seg_logits.data.numpy()
    assert np.array_equal(np.load(out), expected)


def test_the_exported_config_names_no_type_of_gdkd_seg():
    """The demo's data set becomes the MMSeg data set it extends; the loss declarations are left out."""
    from gdkd_seg.datasets import DigitScenesDataset
    from gdkd_seg.export import package_types, student_config

    cfg = student_config(Config.fromfile(osp.join(ROOT, 'configs', 'demo', 'fkd_deeplabv3_fcn_digits.py')))
    text = cfg.pretty_text
    assert [name for name in package_types() if f"'{name}'" in text] == [] and 'custom_imports' not in cfg
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key].dataset
        assert (dataset.type, dataset.img_suffix) == ('BaseSegDataset', '.png')  # BaseSegDataset's is '.jpg'
        assert tuple(dataset.metainfo['classes']) == tuple(DigitScenesDataset.METAINFO['classes'])


def test_load_from_must_fit_the_model(tmp_path, trained, toy):
    config, ckpt, _, root = trained
    _, teacher = toy
    other = dump(
        runner_cfg(tmp_path / 'o', root, distiller(teacher, student_width=16), max_iters=1), tmp_path / 'other.py'
    )
    with pytest.raises(CheckpointMismatchError, match='does not fit the model of'):
        gdkd_runner.train(other, {'load_from': ckpt})


def test_architecture_mismatch_is_not_called_a_class_mismatch(tmp_path):
    from gdkd_seg.utils import check_state_dict_fits

    narrow, wide = MODELS.build(tiny_segmentor(3, width=8)), MODELS.build(tiny_segmentor(3, width=16))
    with pytest.raises(CheckpointMismatchError) as err:
        check_state_dict_fits(wide, narrow.state_dict(), 'narrow.pth', 'the wide model')
    assert 'classes' not in str(err.value) and 'another architecture or width' in str(err.value)


# -- 2. non-finite values ------------------------------------------------------------------------------------


def test_a_nan_in_the_teacher_checkpoint_is_refused(tmp_path):
    state = MODELS.build(tiny_segmentor(3, width=16, aux=True)).state_dict()
    state['backbone.layer2.0.conv1.weight'][0, 0, 0, 0] = float('nan')
    torch.save({'state_dict': state}, tmp_path / 'nan.pth')
    model = MODELS.build(distiller(tmp_path / 'nan.pth'))
    with pytest.raises(TeacherCheckpointError, match=r'non-finite(.|\n)*backbone\.layer2\.0\.conv1\.weight'):
        model.init_weights()


def test_a_checkpoint_that_is_a_directory_is_called_one(tmp_path):
    teachers = tmp_path / 'teachers'
    teachers.mkdir()
    model = MODELS.build(distiller(teachers))
    with pytest.raises(TeacherCheckpointError, match=rf'{re.escape(str(teachers))} is a directory(.|\n)*no \.pth file'):
        model.init_weights()
    for name in ('iter_8.pth', 'iter_4.pth'):
        (teachers / name).write_bytes(b'')
    model = MODELS.build(distiller(teachers))
    with pytest.raises(TeacherCheckpointError, match=r'is a directory(.|\n)*iter_4\.pth, iter_8\.pth'):
        model.init_weights()
    root = write_seg_folder(str(tmp_path / 'data'), n_train=1, n_val=1)
    config = dump(runner_cfg(tmp_path / 'work', root, tiny_segmentor()), tmp_path / 'cfg.py')
    with pytest.raises(FileNotFoundError, match=rf'{re.escape(str(teachers))} is a directory, not a checkpoint'):
        gdkd_runner.test(config, str(teachers), work_dir=str(tmp_path / 'test'))


@HOOKS.register_module()
class _PoisonLossAt(Hook):
    """Makes the distillation loss NaN from iteration ``at`` on (as a diverging run would)."""

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            runner.model.distill_scale = float('nan')


def test_training_stops_at_a_non_finite_loss_and_keeps_the_last_good_checkpoint(tmp_path, toy):
    root, teacher = toy
    cfg = runner_cfg(tmp_path / 'work', root, distiller(teacher), max_iters=8, val=False)
    cfg.default_hooks.checkpoint.interval = 2
    cfg.custom_hooks = [dict(type='_PoisonLossAt', at=4)]
    config = dump(cfg, tmp_path / 'nan.py')
    with pytest.raises(NonFiniteLossError, match=r'iteration 4: distill\.decode\.loss_gdkd = nan'):
        gdkd_runner.train(config)
    work = tmp_path / 'work'
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == ['iter_2.pth']
    assert open(work / 'last_checkpoint').read().strip().endswith('iter_2.pth')
    state = safe_torch_load(str(work / 'iter_2.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize(
    'name, value', [('temperature', float('inf')), ('loss_weight', float('inf')), ('w2', float('nan'))]
)
def test_losses_refuse_infinite_settings(name, value):
    with pytest.raises(ValueError, match=rf'{name} must be'):
        GDKDLoss(**{name: value})


@pytest.mark.parametrize(
    'loss',
    [GDKDLoss(topk=2), GDKDLoss(topk=2, fused=False), DKDLoss(), DKDLoss(fused=False), KDLoss(), CWDLoss()],
    ids=repr,
)
def test_masked_teacher_classes_give_finite_values_and_gradients(loss):
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(2, 6, 5, 7, generator=g).requires_grad_()
    zt = torch.randn(2, 6, 5, 7, generator=g)
    zt[:, 2] = float('-inf')  # class 2 masked everywhere
    zt[0, 3:, 1] = float('-inf')  # and classes 3-5 on one row (GDKD's other group empty of teacher mass)
    gt = torch.randint(0, 6, (2, 5, 7), generator=g)
    gt[0, 0, :3] = 2  # labels on the masked class (DKD's target group without teacher mass)
    value = loss(zs, zt, gt)
    value.backward()
    assert torch.isfinite(value) and value > 0 and torch.isfinite(zs.grad).all()


def test_masked_teacher_classes_fused_equals_plain():
    g = torch.Generator().manual_seed(1)
    zs = torch.randn(2, 6, 5, 7, generator=g, dtype=torch.float64)
    zt = torch.randn(2, 6, 5, 7, generator=g, dtype=torch.float64)
    zt[:, 4] = float('-inf')
    zt[1, 1:, 2] = float('-inf')
    gt = torch.randint(0, 6, (2, 5, 7), generator=g)
    gt[1, 0] = 4
    for loss_type, kwargs in ((GDKDLoss, dict(topk=3)), (DKDLoss, {})):
        results = []
        for fused in (True, False):
            student = zs.clone().requires_grad_()
            value = loss_type(fused=fused, **kwargs)(student, zt, gt)
            value.backward()
            results.append((value.detach(), student.grad))
        torch.testing.assert_close(results[0][0], results[1][0])
        torch.testing.assert_close(results[0][1], results[1][1])


@pytest.mark.parametrize('loss', [DKDLoss(), CWDLoss(), GDKDLoss(topk=2)], ids=repr)
def test_an_empty_batch_gives_zero(loss):
    zs = torch.randn(0, 6, 4, 5).requires_grad_()
    value = loss(zs, torch.randn(0, 6, 4, 5), torch.zeros(0, 4, 5, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0


# -- 3. Cityscapes conversion --------------------------------------------------------------------------------


def _polygons(label):
    return dict(imgHeight=32, imgWidth=64, objects=[dict(label=label, polygon=[[0, 0], [40, 0], [40, 20], [0, 20]])])


def test_conversion_names_every_bad_file_and_finishes(tmp_path):
    city = tmp_path / 'cityscapes' / 'gtFine' / 'train' / 'aachen'
    city.mkdir(parents=True)
    (city / 'aachen_000000_000019_gtFine_polygons.json').write_text(json.dumps(_polygons('road')))
    (city / 'aachen_000001_000019_gtFine_polygons.json').write_text(json.dumps(_polygons('dragon')))
    (city / 'aachen_000002_000019_gtFine_polygons.json').write_text('{"imgHeight": 32, "objects": [')
    result = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'convert_cityscapes.py'),
            str(tmp_path / 'cityscapes'),
            '--nproc',
            '2',
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert '1 of 3 label maps written' in result.stdout
    assert "aachen_000001_000019_gtFine_polygons.json: Label 'dragon' not known" in result.stdout
    assert 'aachen_000002_000019_gtFine_polygons.json: JSONDecodeError' in result.stdout
    labels = np.array(Image.open(city / 'aachen_000000_000019_gtFine_labelTrainIds.png'))
    assert labels[5, 5] == 0 and labels[30, 60] == 255  # road inside the polygon, unlabeled outside


# -- 4. emergency checkpoints and --resume -------------------------------------------------------------------


@HOOKS.register_module()
class _InterruptAt(Hook):
    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            raise KeyboardInterrupt('SIGTERM')


def _interrupted_runner(tmp_path, root, at, interval=100):
    cfg = runner_cfg(tmp_path / 'work', root, tiny_segmentor(), max_iters=10, val=False)
    cfg.default_hooks.checkpoint.interval = interval
    cfg.custom_hooks = [dict(type='_InterruptAt', at=at)]
    return gdkd_runner.build_runner(cfg)


def test_a_second_sigterm_during_the_emergency_save_is_ignored(tmp_path, toy, monkeypatch):
    root, _ = toy
    runner = _interrupted_runner(tmp_path, root, at=3)
    save = Runner.save_checkpoint

    def save_and_get_another_sigterm(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the checkpoint is being written
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Runner, 'save_checkpoint', save_and_get_another_sigterm)
    with pytest.raises(KeyboardInterrupt):
        gdkd_runner.train_with_recovery(runner)
    saved = safe_torch_load(str(tmp_path / 'work' / 'iter_2.pth'))
    assert saved['meta']['iter'] == 2 and saved['state_dict']


def test_a_crash_right_after_a_periodic_save_keeps_that_file(tmp_path, toy):
    root, _ = toy
    runner = _interrupted_runner(tmp_path, root, at=3, interval=2)  # iter_2.pth saved, then the crash
    stats = {}

    class Watch(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            path = tmp_path / 'work' / 'iter_2.pth'
            if path.exists():
                stats['before'] = path.stat()

    runner.register_hook(Watch(), priority='LOWEST')
    with pytest.raises(KeyboardInterrupt):
        gdkd_runner.train_with_recovery(runner)
    after = (tmp_path / 'work' / 'iter_2.pth').stat()
    assert (after.st_ino, after.st_mtime_ns) == (stats['before'].st_ino, stats['before'].st_mtime_ns)


def test_an_emergency_checkpoint_is_deleted_in_turn_by_max_keep_ckpts(tmp_path, toy):
    root, _ = toy

    def config(interrupt_at=None):
        cfg = runner_cfg(tmp_path / 'work', root, tiny_segmentor(), max_iters=10, val=False)
        cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=2)
        cfg.custom_hooks = [dict(type='_InterruptAt', at=interrupt_at)] if interrupt_at else []
        return cfg

    with pytest.raises(KeyboardInterrupt):
        gdkd_runner.train_with_recovery(gdkd_runner.build_runner(config(interrupt_at=4)))
    assert {'iter_2.pth', 'iter_3.pth'} <= set(os.listdir(tmp_path / 'work'))
    gdkd_runner.train(dump(config(), tmp_path / 'plain.py'), resume=True)
    assert sorted(f for f in os.listdir(tmp_path / 'work') if f.endswith('.pth')) == ['iter_10.pth', 'iter_8.pth']


def test_resume_falls_back_from_a_truncated_checkpoint_and_warns_without_one(tmp_path, toy):
    root, _ = toy
    cfg = runner_cfg(tmp_path / 'work', root, tiny_segmentor(), max_iters=4, val=False)
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=-1)
    config = dump(cfg, tmp_path / 'plain.py')
    with pytest.warns(UserWarning, match='no checkpoint in .*work, so training starts from scratch'):
        gdkd_runner.train(config, resume=True)
    latest = tmp_path / 'work' / 'iter_4.pth'
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # a write cut short
    with pytest.raises(CheckpointReadError, match=r'iter_4\.pth: it is truncated'):
        safe_torch_load(str(latest))
    cfg.train_cfg.max_iters = 6
    cfg.param_scheduler[0].end = 6
    config = dump(cfg, tmp_path / 'plain6.py')
    with pytest.warns(UserWarning, match=r'iter_4\.pth is truncated .*continuing from the previous one, .*iter_2\.pth'):
        resumed = gdkd_runner.train(config, resume=True)
    assert resumed.iter == 6 and safe_torch_load(str(tmp_path / 'work' / 'iter_6.pth'))['meta']['iter'] == 6


# -- 5. bad data ---------------------------------------------------------------------------------------------


def test_an_empty_data_folder_stops_before_any_model_is_built(tmp_path, monkeypatch):
    root = tmp_path / 'data'
    for sub in ('img_dir/train', 'ann_dir/train', 'img_dir/val', 'ann_dir/val'):
        (root / sub).mkdir(parents=True)
    config = dump(runner_cfg(tmp_path / 'work', str(root), tiny_segmentor()), tmp_path / 'empty.py')
    monkeypatch.setattr(gdkd_runner, 'build_runner', lambda cfg: pytest.fail('models were built'))
    with pytest.raises(
        DatasetNotFoundError,
        match=r'train_dataloader: the BaseSegDataset found no samples: no '
        r'images \*\.png under .*img_dir/train',
    ):
        gdkd_runner.train(config)


def _write_label(root, split, index, value):
    path = osp.join(root, 'ann_dir', split, f'{index:03d}.png')
    label = np.array(Image.open(path))
    label[:4, :4] = value
    Image.fromarray(label).save(path)
    return path


def test_out_of_range_labels_are_found_early_and_named(tmp_path, monkeypatch):
    root = write_seg_folder(str(tmp_path / 'data'), n_train=3, n_val=2)
    bad = _write_label(root, 'train', 1, 7)  # 7 with 3 classes
    config = dump(runner_cfg(tmp_path / 'work', root, tiny_segmentor()), tmp_path / 'cfg.py')
    monkeypatch.setattr(gdkd_runner, 'build_runner', lambda cfg: pytest.fail('models were built'))
    with pytest.raises(ValueError, match=rf'train_dataloader: {bad}: label values \[7\] are outside \[0, 3\)'):
        gdkd_runner.train(config)


def test_out_of_range_labels_outside_the_sample_stop_at_the_sample(tmp_path):
    root = write_seg_folder(str(tmp_path / 'data'), n_train=30, n_val=2)
    bad = _write_label(root, 'train', 1, 9)  # not among the 8 label maps spread over the 30 checked up front
    cfg = runner_cfg(tmp_path / 'work', root, tiny_segmentor(), max_iters=30, val=False)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=False)
    config = dump(cfg, tmp_path / 'cfg.py')
    with pytest.raises(ValueError, match=rf'{bad}: label values \[9\]'):
        gdkd_runner.train(config)


def test_test_refuses_out_of_range_labels(tmp_path, trained):
    config, ckpt, _, root = trained
    bad = _write_label(root, 'val', 0, 200)
    with pytest.raises(ValueError, match=rf'{bad}: label values \[200\]'):
        gdkd_runner.test(config, ckpt, work_dir=str(tmp_path / 'test'))


def _sample_files(root, split, index):
    return tuple(osp.join(root, sub, split, f'{index:03d}.png') for sub in ('img_dir', 'ann_dir'))


def test_a_label_map_of_another_size_than_its_image_is_found_early_naming_both(tmp_path, monkeypatch):
    root = write_seg_folder(str(tmp_path / 'data'), n_train=3, n_val=2)
    image, label = _sample_files(root, 'train', 1)
    Image.open(label).resize((64, 48), Image.NEAREST).save(label)  # the image is 64x64
    config = dump(runner_cfg(tmp_path / 'work', root, tiny_segmentor()), tmp_path / 'cfg.py')
    monkeypatch.setattr(gdkd_runner, 'build_runner', lambda cfg: pytest.fail('models were built'))
    with pytest.raises(ValueError) as err:
        gdkd_runner.train(config)
    assert str(err.value).startswith(
        f'train_dataloader: {label}: the label map is 64x48 (width x height), but its image {image} is 64x64'
    )
    assert 'nearest' in str(err.value)


def test_each_label_map_is_compared_with_its_image_as_loaded_before_any_resize(tmp_path):
    """MMSeg's test pipelines resize the image before LoadAnnotations: the original size is the one to match."""
    from mmcv.transforms import Compose
    from mmseg.registry import TRANSFORMS

    root = write_seg_folder(str(tmp_path / 'data'), n_train=1, n_val=0)
    image, label = _sample_files(root, 'train', 0)
    steps = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(32, 32), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='CheckSegLabels', num_classes=3),
    ]
    pipeline = Compose([TRANSFORMS.build(step) for step in steps])
    sample = dict(img_path=image, seg_map_path=label, reduce_zero_label=False, seg_fields=[])
    assert pipeline(dict(sample))['gt_seg_map'].shape == (64, 64)
    Image.open(label).resize((40, 64), Image.NEAREST).save(label)
    with pytest.raises(
        ValueError, match=re.escape(f'{label}: the label map is 40x64 (width x height), but its image {image} is 64x64')
    ):
        pipeline(dict(sample))


MULTI_CHANNEL_MESSAGES = {
    'copy': r'the label map has 3 channels that all hold the same values: an RGB copy of a label map(.|\n)*'
    r'convert\("L"\)',
    'colour': r'the label map is an RGB \(colour-coded\) image(.|\n)*convert each colour to its class id',
}


@pytest.mark.parametrize('kind', sorted(MULTI_CHANNEL_MESSAGES))
def test_a_multi_channel_label_map_is_refused_by_name(tmp_path, monkeypatch, kind):
    from gdkd_seg.datasets.transforms import CheckSegLabels

    root = write_seg_folder(str(tmp_path / 'data'), n_train=3, n_val=2)
    _, label = _sample_files(root, 'train', 1)
    ids = np.array(Image.open(label))
    palette = np.array([[128, 64, 128], [244, 35, 232], [70, 70, 70]], np.uint8)
    rgb = np.stack([ids] * 3, axis=-1) if kind == 'copy' else palette[ids]
    Image.fromarray(rgb).save(label)
    message = re.escape(label) + ': ' + MULTI_CHANNEL_MESSAGES[kind]
    config = dump(runner_cfg(tmp_path / 'work', root, tiny_segmentor()), tmp_path / 'cfg.py')
    monkeypatch.setattr(gdkd_runner, 'build_runner', lambda cfg: pytest.fail('models were built'))
    with pytest.raises(ValueError, match='train_dataloader: ' + message):
        gdkd_runner.train(config)  # the spread check before any model is built
    with pytest.raises(ValueError, match=message):  # and the check of each sample as it loads
        CheckSegLabels(num_classes=3)(dict(gt_seg_map=rgb, seg_map_path=label))


# -- exact resume --------------------------------------------------------------------------------------------


def _resume_config(tmp_path, root, teacher, work, kill_at=None):
    cfg = runner_cfg(work, root, distiller(teacher, dropout=0.3), max_iters=20)
    cfg.train_dataloader.dataset.pipeline.insert(2, dict(type='RandomFlip', prob=0.5))  # numpy's RNG
    cfg.train_cfg.val_interval = 5  # validation between iterations must not shift the random state
    cfg.default_hooks.checkpoint.update(interval=4, max_keep_ckpts=-1)
    cfg.custom_hooks = [dict(type='KillAtIteration', at=kill_at)] if kill_at else []
    cfg.custom_imports = dict(imports=['gdkd_seg', 'helpers'])
    cfg.dump(str(tmp_path / f'{osp.basename(work)}.py'))
    return str(tmp_path / f'{osp.basename(work)}.py')


def _train(config, *extra):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=osp.dirname(osp.abspath(__file__)))
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_a_killed_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, toy):
    root, teacher = toy
    whole = _train(_resume_config(tmp_path, root, teacher, tmp_path / 'whole'))
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _train(_resume_config(tmp_path, root, teacher, tmp_path / 'killed', kill_at=10))
    assert killed.returncode == -signal.SIGKILL
    assert {'iter_4.pth', 'iter_8.pth'} <= set(os.listdir(tmp_path / 'killed'))
    assert not (tmp_path / 'killed' / 'iter_12.pth').exists()
    resumed = _train(_resume_config(tmp_path, root, teacher, tmp_path / 'killed'), '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Advance dataloader 8 steps' in resumed.stdout + resumed.stderr

    a = safe_torch_load(str(tmp_path / 'whole' / 'iter_20.pth'))
    b = safe_torch_load(str(tmp_path / 'killed' / 'iter_20.pth'))
    assert a['state_dict'].keys() == b['state_dict'].keys()
    differ = [k for k in a['state_dict'] if not torch.equal(a['state_dict'][k], b['state_dict'][k])]
    assert not differ, differ
    momentum = [s['momentum_buffer'] for s in a['optimizer']['state'].values()]
    assert all(torch.equal(x, s['momentum_buffer']) for x, s in zip(momentum, b['optimizer']['state'].values()))


class _CountingDataset(torch.utils.data.Dataset):
    def __init__(self, size=10):
        self.size, self.loads = size, 0

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        self.loads += 1
        return torch.tensor([index, np.random.randint(1000)])  # an augmentation draws from numpy


def _loader(sampler, num_workers=0):
    dataset = _CountingDataset()
    sampler = sampler(dataset=dataset, shuffle=True, seed=0)
    return torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=num_workers)


@pytest.mark.parametrize('sampler', ['InfiniteSampler', 'DefaultSampler'])
def test_a_resumed_loader_skips_the_trained_batches_without_loading_them(sampler):
    import mmengine.dataset
    from mmengine.runner.loops import _InfiniteDataloaderIterator

    from gdkd_seg.engine.safety import _RestoreAfterAdvance, random_states

    sampler = getattr(mmengine.dataset, sampler)
    np.random.seed(0)
    whole = _InfiniteDataloaderIterator(_loader(sampler))
    trained = [next(whole) for _ in range(7)]
    saved = random_states()  # what the checkpoint of iteration 7 holds
    expected = [next(whole) for _ in range(3)]

    np.random.seed(1)
    loader = _loader(sampler)
    loop = type('Loop', (), {})()
    loop.dataloader_iterator = _InfiniteDataloaderIterator(loader)
    loop.dataloader_iterator = _RestoreAfterAdvance(loop, 7, saved)
    skipped = [next(loop.dataloader_iterator) for _ in range(7)]  # what mmengine's loop does on resume
    loads = loader.dataset.loads
    resumed = [next(loop.dataloader_iterator) for _ in range(3)]

    assert all(torch.equal(a, b) for a, b in zip(expected, resumed)), (expected, resumed)
    if sampler is mmengine.dataset.InfiniteSampler:
        assert loads == 0 and skipped == [None] * 7
    else:  # 3 batches an epoch: the first batch of each new epoch is loaded, the others are not
        assert loads == 2 * 4 and [b is None for b in skipped] == [True, True, True, False, True, True, False]
        assert torch.equal(skipped[3][:, 0], trained[3][:, 0])


def test_a_loader_with_workers_loads_the_batches_it_skips():
    import mmengine.dataset
    from mmengine.runner.loops import _InfiniteDataloaderIterator

    from gdkd_seg.engine.safety import _skip_without_loading

    assert _skip_without_loading(_InfiniteDataloaderIterator(_loader(mmengine.dataset.InfiniteSampler)))
    with_workers = _InfiniteDataloaderIterator(_loader(mmengine.dataset.InfiniteSampler, num_workers=1))
    assert not _skip_without_loading(with_workers)  # their random draws are replayed only by loading
