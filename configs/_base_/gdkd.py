# GDKD as its authors set it for segmentation: k=3, w0=1, w1=1, w2=2, T=1 on the raw head logits.
gdkd = dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0)
