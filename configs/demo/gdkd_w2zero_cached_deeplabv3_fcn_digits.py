# GDKD from the cache without its other-group term (w2=0): the binary term and the KL within the teacher's top-3.
# On the w4 benchmark the other-group KL (over the 8 non-top classes) is GDKD's largest term and never falls;
# this row measures what GDKD gives without it (docs/demo.md, "Why GDKD loses here").
_base_ = './gdkd_cached_deeplabv3_fcn_digits.py'

demo_method = dict(key='GDKD-w2=0', label='GDKD without the other group (w2=0)', order=6, default=False)
model = dict(distill_losses=dict(decode=dict(loss=dict(w2=0.0))))
