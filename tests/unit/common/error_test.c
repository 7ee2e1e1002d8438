/* Every error code has its own text; unknown codes say so. */
#include "check.h"
#include "common/error.h"

int main(void)
{
	CHECK_STR(weir_strerror(WEIR_OK), "success");
	CHECK_STR(weir_strerror(WEIR_EGONE), "resource version gone");
	CHECK_STR(weir_strerror(-9999), "unknown error");
	for (int e = WEIR_ECANCELED; e < 0; e++)
		CHECK(strcmp(weir_strerror(e), "unknown error") != 0);
	return check_finish("error_test");
}
