/* common/error.c - text for the weir error codes. */
#include "error.h"

const char *weir_strerror(int err)
{
	switch (err) {
	case WEIR_OK:
		return "success";
	case WEIR_ENOMEM:
		return "out of memory";
	case WEIR_EINVAL:
		return "invalid value";
	case WEIR_EIO:
		return "input/output error";
	case WEIR_EPARSE:
		return "parse error";
	case WEIR_EVERSION:
		return "unsupported format version";
	case WEIR_ENOENT:
		return "not found";
	case WEIR_ETIMEDOUT:
		return "timed out";
	case WEIR_EAGAIN:
		return "try again";
	case WEIR_ETOOBIG:
		return "too large";
	case WEIR_ETLS:
		return "TLS error";
	case WEIR_EHTTP:
		return "unexpected HTTP status";
	case WEIR_EGONE:
		return "resource version gone";
	case WEIR_ECLOSED:
		return "connection closed";
	case WEIR_ECANCELED:
		return "canceled";
	}
	return "unknown error";
}
