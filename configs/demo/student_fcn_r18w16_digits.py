# The demo student alone: FCN on three stages of a quarter-width ResNetV1c-18, the demo schedule.
_base_ = ['./_base_/fcn_student.py', './_base_/digit_scenes.py', './_base_/runtime.py']
